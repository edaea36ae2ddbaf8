// The vendor-key rules of secretlint's recommended preset (AWS, GitHub, Slack, SendGrid, Stripe,
// npm, OpenAI, Anthropic, Hugging Face, GitLab, Shopify, Vault, database URLs, private keys, …),
// run synchronously on one text. secretlint's own runner (@secretlint/core `lintSource`) is async
// and its profiler is on by default: measured with core 13.0.7 on Node 20, 2,000 small files left
// 124,000 performance marks in the process timeline and 73 MB more heap (a 20,000-file workspace
// would keep ~1.2 M). The rules themselves are synchronous scanners over `source.content`, written
// against secretlint's public rule interface (SecretLintRuleCreator), which is all this runner provides.
import { rules as presetRules } from '@secretlint/secretlint-rule-preset-recommend';

/** A span of the text that a vendor rule reported, by its short rule name (`secretlint/aws`). */
export interface VendorFinding {
  rule: string;
  start: number;
  end: number;
}

/** The slice of secretlint's SecretLintSourceCode that the preset's scanners read. */
interface RuleSource {
  readonly content: string;
  readonly hasBOM: false;
  /** Never set: with no path the preset never reads a file from disk (its GCP .p12 check would). */
  readonly filePath: undefined;
  readonly physicalFilePath: undefined;
  readonly contentType: 'text';
  readonly ext: string;
  getFilePath(): undefined;
  getPhysicalFilePath(): undefined;
}

/** The slice of secretlint's rule interface (SecretLintRuleCreator) this runner relies on. */
interface RuleCreator {
  meta: { id: string; type: string; supportedContentTypes: readonly string[] };
  create(
    context: {
      sharedOptions: Record<string, unknown>;
      createTranslator(messages: unknown): (messageId: string, data?: unknown) => { message: string; messageId: string; data?: unknown };
      report(descriptor: { range: readonly [number, number] }): void;
      ignore(descriptor: unknown): void;
    },
    options: Record<string, unknown>,
  ): { file?(source: RuleSource): void | Promise<void> };
}

/**
 * `filter-comments` is left out: a `secretlint-disable` comment in a workspace file must not switch
 * detection off for training. Every rule runs with its default options.
 */
const SKIPPED_RULES = new Set(['@secretlint/secretlint-rule-filter-comments']);

const shortName = (id: string) => `secretlint/${id.replace(/^@secretlint\/secretlint-rule-/, '')}`;

interface LoadedRule {
  name: string;
  scan: (source: RuleSource) => void;
}

let loaded: { rules: LoadedRule[]; sink: VendorFinding[]; current: { name: string } } | undefined;

/** Creates each scanner once; they report into one shared sink, tagged with the rule running now. */
function loadRules(): NonNullable<typeof loaded> {
  if (loaded !== undefined) return loaded;
  const sink: VendorFinding[] = [];
  const current = { name: '' };
  const rules: LoadedRule[] = [];
  for (const creator of presetRules as unknown as RuleCreator[]) {
    const { id, type, supportedContentTypes } = creator.meta;
    if (SKIPPED_RULES.has(id) || type !== 'scanner' || !supportedContentTypes.some((t) => t === 'text' || t === 'all')) continue;
    const handlers = creator.create(
      {
        sharedOptions: {},
        createTranslator: () => (messageId, data) => ({ message: messageId, messageId, data }),
        report: ({ range }) => sink.push({ rule: current.name, start: range[0], end: range[1] }),
        ignore: () => undefined,
      },
      {},
    );
    const file = handlers.file;
    if (file === undefined) continue;
    const name = shortName(id);
    rules.push({
      name,
      scan: (source) => {
        const pending = file.call(handlers, source);
        // Only the GCP .p12 check is asynchronous, and it needs a file path, which is never given.
        if (pending !== undefined) throw new Error(`${id} scanned asynchronously; the secret scrubber needs synchronous rules`);
      },
    });
  }
  loaded = { rules, sink, current };
  return loaded;
}

/** The names of the vendor rules in use, for reports and tests. */
export function vendorRuleNames(): string[] {
  return loadRules().rules.map((r) => r.name);
}

/**
 * Every span a vendor rule reports in `text`. `ext` ('.json', or '') lets the GCP rule recognise a
 * service-account key file. A rule that throws reports the whole text, so a scanner bug hides text
 * rather than letting a secret through.
 */
export function findVendorSecrets(text: string, ext = ''): VendorFinding[] {
  const { rules, sink, current } = loadRules();
  const source: RuleSource = {
    content: text,
    hasBOM: false,
    filePath: undefined,
    physicalFilePath: undefined,
    contentType: 'text',
    ext,
    getFilePath: () => undefined,
    getPhysicalFilePath: () => undefined,
  };
  sink.length = 0;
  for (const rule of rules) {
    current.name = rule.name;
    try {
      rule.scan(source);
    } catch {
      sink.push({ rule: `${rule.name} (failed)`, start: 0, end: text.length });
    }
  }
  return sink.splice(0);
}
