// `kiln model init <dir> --tokenizer DIR --hidden N --layers N --heads N ...`: a freshly initialised
// LLaMA-family checkpoint to pretrain from (`kiln finetune --mode full`).
import { parseModelConfig } from '../model/config';
import { Tokenizer } from '../model/tokenizer';
import { writeInitialCheckpoint } from '../model/init-weights';
import { parseCommandArgs, parseNonNegativeInt, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln model init <out-dir> --tokenizer DIR [--hidden 256] [--layers 6] [--heads 8] [--kv-heads 8] [--mlp 768] [--max-positions 2048] [--rope-theta 10000] [--seed N]';

export async function runModelInit(args: string[], out: (text: string) => void): Promise<number> {
  const { dir, tokenizerDir, config, seed } = withUsage(USAGE, () => {
    const flags = ['tokenizer', 'hidden', 'layers', 'heads', 'kv-heads', 'mlp', 'max-positions', 'rope-theta', 'seed'];
    const { values, positionals } = parseCommandArgs(args, Object.fromEntries(flags.map((f) => [f, { type: 'string' as const }])));
    const v = values as Record<string, string | undefined>;
    if (positionals.length !== 1) throw new UsageError('expected one output folder');
    if (!v.tokenizer) throw new UsageError('--tokenizer is required (a folder with tokenizer.json)');
    const int = (k: string, d: number) => parseNonNegativeInt(k, v[k], d);
    const tokenizer = Tokenizer.load(v.tokenizer);
    const heads = int('heads', 8);
    const hidden = int('hidden', 256);
    const config = parseModelConfig(
      {
        model_type: 'llama',
        hidden_size: hidden,
        num_hidden_layers: int('layers', 6),
        num_attention_heads: heads,
        num_key_value_heads: int('kv-heads', heads),
        intermediate_size: int('mlp', 3 * hidden),
        vocab_size: tokenizer.vocabSize,
        max_position_embeddings: int('max-positions', 2048),
        rope_theta: int('rope-theta', 10000),
        rms_norm_eps: 1e-5,
        tie_word_embeddings: true,
        eos_token_id: tokenizer.eosId,
      },
      'command line',
    );
    return { dir: positionals[0]!, tokenizerDir: v.tokenizer, config, seed: int('seed', 0) };
  });
  writeInitialCheckpoint(dir, config, tokenizerDir, seed);
  out(`initialised ${dir}: d=${config.hiddenSize}, ${config.numLayers} layers, ${config.numHeads} heads, vocab ${config.vocabSize}`);
  return 0;
}
