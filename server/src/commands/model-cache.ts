// `kiln model cache [--cache DIR] [--clean | --max-gb N] [--json]`: what the graph cache holds (each
// built graph, its adapter graphs, sizes, last use) and cleaning it. Graphs loaded in the last ten
// minutes may be serving in an editor window and are kept unless --force is given.
import { defaultCacheDir } from '../model/graph/build-cache';
import { type GraphCacheListing, listGraphCache, pruneGraphCache, RECENT_USE_MS } from '../model/graph/graph-cache';
import { parseCommandArgs, UsageError, withUsage } from './cli-args';

const USAGE =
  'usage: kiln model cache [--cache DIR] [--clean | --max-gb N] [--force] [--json]\n' +
  '  lists the built graphs (least recently used first); --clean removes them, --max-gb N removes the\n' +
  "  least recently used until the cache fits in N GiB. The editor keeps its cache in the extension's\n" +
  '  global storage (…/globalStorage/<extension>/graphs): pass that folder as --cache';

function parse(args: string[]) {
  const { values, positionals } = parseCommandArgs(args, {
    cache: { type: 'string' },
    clean: { type: 'boolean' },
    'max-gb': { type: 'string' },
    force: { type: 'boolean' },
    json: { type: 'boolean' },
  });
  if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
  if (values.clean && values['max-gb'] !== undefined) throw new UsageError('--clean and --max-gb do not go together');
  let limitBytes: number | undefined;
  if (values.clean) limitBytes = 0;
  if (values['max-gb'] !== undefined) {
    const gb = Number(values['max-gb']);
    if (!(gb >= 0 && Number.isFinite(gb))) throw new UsageError(`--max-gb must be a number of GiB ≥ 0, got "${values['max-gb']}"`);
    limitBytes = gb * 2 ** 30;
  }
  return { cacheDir: values.cache ?? defaultCacheDir(), limitBytes, force: values.force === true, json: values.json === true };
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function formatListing(listing: GraphCacheListing, cacheDir: string): string {
  const lines = [`graph cache ${cacheDir}: ${listing.graphs.length} graph(s), ${mib(listing.totalBytes)}`];
  for (const g of listing.graphs) {
    const state = g.complete ? '' : ' (incomplete)';
    lines.push(`  ${g.key}  ${mib(g.bytes).padStart(11)}  last used ${new Date(g.lastUsedMs).toISOString()}  ${g.precision ?? '?'}  ${g.modelDir ?? '?'}${state}`);
    for (const a of g.adapters) lines.push(`    + adapter ${a.adapterDir ?? a.key}  ${mib(a.bytes)} (shares the weights above)`);
  }
  for (const l of listing.leftovers) lines.push(`  leftover ${l.dir}  ${mib(l.bytes)}`);
  return lines.join('\n');
}

export async function runModelCache(args: string[], out: (text: string) => void): Promise<number> {
  const o = withUsage(USAGE, () => parse(args));
  if (o.limitBytes === undefined) {
    const listing = listGraphCache(o.cacheDir);
    out(o.json ? JSON.stringify({ cacheDir: o.cacheDir, ...listing }, null, 2) : formatListing(listing, o.cacheDir));
    return 0;
  }
  const failures: string[] = [];
  const result = pruneGraphCache(o.cacheDir, {
    limitBytes: o.limitBytes,
    recentMs: o.force ? 0 : RECENT_USE_MS,
    log: (m) => {
      if (m.includes('could not')) failures.push(m);
    },
  });
  const kept = listGraphCache(o.cacheDir);
  if (o.json) {
    out(JSON.stringify({ cacheDir: o.cacheDir, removed: result.removed, failures, ...kept }, null, 2));
  } else {
    out(`removed ${result.removed.length} graph(s), ${mib(result.removed.reduce((a, g) => a + g.bytes, 0))}; ${mib(kept.totalBytes)} left`);
    for (const f of failures) out(`  ${f}`);
    if (kept.totalBytes > o.limitBytes && !o.force) out('  graphs used in the last 10 minutes are kept (an editor may be serving them); --force removes them too');
  }
  return failures.length > 0 ? 1 : 0;
}
