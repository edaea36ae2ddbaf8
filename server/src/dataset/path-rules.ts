// Decisions made from a file's path alone, before it is read: secrets are never opened.
import type { ExclusionReason } from './exclusions';

export interface PathVerdict {
  reason: ExclusionReason;
  detail?: string;
  /** For 'vendored': the vendored folder ('a/node_modules/'), so its files are reported once. */
  folder?: string;
}

/** Folders whose contents are dependencies, build output, caches or tool state, at any depth. */
const VENDORED_DIRS = new Set([
  'node_modules',
  'bower_components',
  'jspm_packages',
  'vendor',
  'third_party',
  'third-party',
  'thirdparty',
  'dist',
  'build',
  'out',
  'target',
  '_build',
  '.git',
  '.hg',
  '.svn',
  '__pycache__',
  'venv',
  '.venv',
  'site-packages',
  '.tox',
  '.nox',
  '.eggs',
  '.mypy_cache',
  '.pytest_cache',
  '.ruff_cache',
  'coverage',
  '.nyc_output',
  '.next',
  '.nuxt',
  '.svelte-kit',
  '.turbo',
  '.cache',
  '.parcel-cache',
  '.gradle',
  '.idea',
  '.vscode-test',
  'Pods',
  'Carthage',
  '.terraform',
  '.yarn',
  '.pnpm-store',
  '.dart_tool',
  'elm-stuff',
  '.stack-work',
  '.kiln-cache',
]);
const VENDORED_DIR_PATTERNS = [/^bazel-/, /\.egg-info$/];

const LOCK_FILES = new Set([
  'package-lock.json',
  'npm-shrinkwrap.json',
  'yarn.lock',
  'pnpm-lock.yaml',
  'bun.lock',
  'bun.lockb',
  'deno.lock',
  'cargo.lock',
  'poetry.lock',
  'pipfile.lock',
  'pdm.lock',
  'uv.lock',
  'gemfile.lock',
  'composer.lock',
  'go.sum',
  'go.work.sum',
  'mix.lock',
  'pubspec.lock',
  'podfile.lock',
  'packages.lock.json',
  'flake.lock',
  'gradle.lockfile',
  'package.resolved',
  'cartfile.resolved',
  'paket.lock',
]);

/** Key, certificate, key-store, password-store and infrastructure-state extensions. */
const SECRET_EXTENSIONS = new Set([
  'pem',
  'key',
  'p12',
  'pfx',
  'p8',
  'pkcs12',
  'jks',
  'keystore',
  'bks',
  'jceks',
  'keychain',
  'keychain-db',
  'ppk',
  'pvk',
  'snk',
  'der',
  'crt',
  'cer',
  'gpg',
  'pgp',
  'asc',
  'kdbx',
  'kdb',
  'psafe3',
  'tfstate',
  'tfvars',
  'ovpn',
  'mobileprovision',
  'kubeconfig',
  'netrc',
]);
const SECRET_NAMES = new Set([
  '.npmrc',
  '.yarnrc',
  '.yarnrc.yml',
  '.pypirc',
  '.netrc',
  '_netrc',
  'netrc',
  '.git-credentials',
  '.gitcookies',
  '.htpasswd',
  '.pgpass',
  '.my.cnf',
  '.mylogin.cnf',
  '.dockercfg',
  '.dockerconfigjson',
  '.s3cfg',
  '.boto',
  '.vault-token',
  '.terraformrc',
  'terraform.rc',
  'credentials',
  'kubeconfig',
  'admin.conf',
  'wp-config.php',
  'google-services.json',
  'googleservice-info.plist',
  '.msmtprc',
  '.fetchmailrc',
  '.bash_history',
  '.zsh_history',
  '.psql_history',
  '.mysql_history',
  '.python_history',
  '.node_repl_history',
]);
const SECRET_NAME_PATTERNS = [
  /^\.env/, // .env, .env.local, .envrc
  /\.env$/, // production.env
  /^id_(rsa|dsa|ecdsa|ed25519)/,
  /_(rsa|dsa|ecdsa|ed25519)(\.pub)?$/, // deploy_rsa, github_ed25519.pub
  /^(access|auth|oauth|api|refresh)?[-_]?tokens?\.(json|ya?ml|txt)$/,
  /^service[-_]?account.*\.json$/,
  /(^|[-_.])key(file)?\.json$/, // key.json, sa-key.json, gcp-keyfile.json: service-account keys
  /firebase-adminsdk.*\.json$/,
  /\.tfstate\.backup$/,
  /\.tfvars\.json$/, // terraform.tfvars.json, prod.auto.tfvars.json: the JSON form of .tfvars
  /^local\.settings\.json$/, // Azure Functions' local settings: storage keys and connection strings
  /^\.?docker-?config\.json$/,
];
/** Folders that hold nothing but credentials (or tokens next to config), at any depth. */
const SECRET_DIRS = new Set(['.ssh', '.gnupg', '.aws', '.kube', '.azure', '.password-store']);
const SECRET_PATH_SUFFIXES = ['.docker/config.json', '.config/hub', '.m2/settings.xml', '.m2/settings-security.xml', '.composer/auth.json', 'composer/auth.json'];
/** Names that are secret only at the top of the workspace: Composer's `auth.json` (deeper, an `auth.json` is often translations). */
const ROOT_SECRET_NAMES = new Set(['auth.json']);
/** Folders under `.config` where CLIs keep their tokens. */
const SECRET_CONFIG_DIRS = ['.config/gcloud/', '.config/gh/'];
/**
 * Words in the name of a data or config file that say it holds secrets (source files such as
 * `kubeconfig.ts` or `secrets.ts` are scrubbed instead).
 */
const SECRET_WORD = /secret|credential|passw(or)?d|kube-?config|htpasswd|pgpass/;
const CONFIG_EXTENSIONS = new Set(['', 'json', 'yaml', 'yml', 'toml', 'ini', 'cfg', 'conf', 'config', 'properties', 'xml', 'txt', 'plist']);

/** Extensions whose files are not text (or not worth training on), excluded unread as 'binary'. */
const BINARY_EXTENSIONS = new Set([
  'png',
  'jpg',
  'jpeg',
  'gif',
  'bmp',
  'ico',
  'icns',
  'webp',
  'avif',
  'tif',
  'tiff',
  'psd',
  'heic',
  'pdf',
  'zip',
  'gz',
  'tgz',
  'bz2',
  'xz',
  'zst',
  '7z',
  'rar',
  'tar',
  'jar',
  'war',
  'ear',
  'whl',
  'egg',
  'exe',
  'dll',
  'so',
  'dylib',
  'a',
  'lib',
  'o',
  'obj',
  'class',
  'pyc',
  'pyo',
  'wasm',
  'node',
  'bin',
  'dat',
  'woff',
  'woff2',
  'ttf',
  'otf',
  'eot',
  'mp3',
  'mp4',
  'm4a',
  'wav',
  'ogg',
  'flac',
  'avi',
  'mov',
  'mkv',
  'webm',
  'sqlite',
  'db',
  'onnx',
  'safetensors',
  'gguf',
  'pt',
  'pth',
  'ckpt',
  'npy',
  'npz',
  'pkl',
  'h5',
  'parquet',
  'vsix',
  'dmg',
  'iso',
  'deb',
  'rpm',
  'apk',
  'ipa',
  'xlsx',
  'docx',
  'pptx',
  'xls',
  'doc',
  'ppt',
]);
const MINIFIED_NAME = /[.-]min\.(js|mjs|cjs|css)$/;
const GENERATED_NAME = [
  /\.pb\.(go|cc|h)$/,
  /_pb2(_grpc)?\.pyi?$/,
  /_pb\.(js|ts|d\.ts)$/,
  /\.g\.dart$/,
  /\.freezed\.dart$/,
  /\.generated\.\w+$/,
  /\.designer\.cs$/,
  /\.bundle\.(js|css)$/,
  /\.chunk\.(js|css)$/,
];

/** Source and text extensions trained on; anything else is 'not-source'. */
export const SOURCE_EXTENSIONS: ReadonlySet<string> = new Set([
  'ts',
  'tsx',
  'mts',
  'cts',
  'js',
  'jsx',
  'mjs',
  'cjs',
  'py',
  'pyi',
  'rb',
  'go',
  'rs',
  'java',
  'kt',
  'kts',
  'scala',
  'sc',
  'groovy',
  'gradle',
  'swift',
  'm',
  'mm',
  'c',
  'h',
  'cc',
  'cpp',
  'cxx',
  'hpp',
  'hh',
  'hxx',
  'inl',
  'ipp',
  'cu',
  'cuh',
  'cs',
  'fs',
  'fsi',
  'fsx',
  'vb',
  'php',
  'pl',
  'pm',
  'lua',
  'r',
  'jl',
  'dart',
  'ex',
  'exs',
  'erl',
  'hrl',
  'elm',
  'hs',
  'lhs',
  'ml',
  'mli',
  'clj',
  'cljs',
  'cljc',
  'edn',
  'lisp',
  'el',
  'scm',
  'rkt',
  'nim',
  'zig',
  'v',
  'sv',
  'svh',
  'vhd',
  'vhdl',
  'sol',
  'sh',
  'bash',
  'zsh',
  'fish',
  'ps1',
  'psm1',
  'bat',
  'cmd',
  'sql',
  'graphql',
  'gql',
  'proto',
  'thrift',
  'html',
  'htm',
  'vue',
  'svelte',
  'astro',
  'css',
  'scss',
  'sass',
  'less',
  'styl',
  'json',
  'jsonc',
  'json5',
  'yaml',
  'yml',
  'toml',
  'ini',
  'cfg',
  'xml',
  'md',
  'mdx',
  'rst',
  'txt',
  'tex',
  'cmake',
  'mk',
  'make',
  'dockerfile',
  'tf',
  'hcl',
  'nix',
  'glsl',
  'hlsl',
  'wgsl',
  'bazel',
  'bzl',
  'star',
  'gd',
  'cabal',
  'purs',
  'ada',
  'adb',
  'ads',
  'f',
  'f90',
  'f95',
  'pas',
  'asm',
  's',
  'tcl',
  'awk',
  'sed',
  'vim',
  'prisma',
  'razor',
  'cshtml',
  'ejs',
  'hbs',
  'njk',
  'pug',
]);
const SOURCE_NAMES = new Set([
  'makefile',
  'gnumakefile',
  'dockerfile',
  'containerfile',
  'rakefile',
  'gemfile',
  'jenkinsfile',
  'vagrantfile',
  'procfile',
  'justfile',
  'build',
  'workspace',
  'cmakelists.txt',
]);

/** The extension without its dot, lower-cased ('' for none; a leading-dot name has none). */
export function extensionOf(name: string): string {
  const dot = name.lastIndexOf('.');
  return dot <= 0 ? '' : name.slice(dot + 1).toLowerCase();
}

/** The vendored folder containing `path` ('a/node_modules/'), or undefined. */
export function vendoredFolder(path: string): string | undefined {
  const parts = path.split('/');
  for (let i = 0; i < parts.length - 1; i++) {
    const dir = parts[i]!;
    if (VENDORED_DIRS.has(dir) || VENDORED_DIR_PATTERNS.some((p) => p.test(dir))) return `${parts.slice(0, i + 1).join('/')}/`;
  }
  return undefined;
}

/** Whether a folder (given by its relative path, without trailing '/') is vendored. */
export function isVendoredDir(path: string): boolean {
  return vendoredFolder(`${path}/x`) !== undefined;
}

/** Whether the path names a secret: env files, keys, certificates, credential stores and configs. */
export function isSecretPath(path: string): boolean {
  const lower = path.toLowerCase();
  const parts = lower.split('/');
  const name = parts[parts.length - 1]!;
  if (parts.slice(0, -1).some((d) => SECRET_DIRS.has(d))) return true;
  if (SECRET_PATH_SUFFIXES.some((s) => lower === s || lower.endsWith(`/${s}`))) return true;
  if (SECRET_CONFIG_DIRS.some((d) => lower.startsWith(d) || lower.includes(`/${d}`))) return true;
  if (SECRET_NAMES.has(name) || SECRET_NAME_PATTERNS.some((p) => p.test(name))) return true;
  if (parts.length === 1 && ROOT_SECRET_NAMES.has(name)) return true;
  const ext = extensionOf(name);
  if (SECRET_EXTENSIONS.has(ext)) return true;
  return SECRET_WORD.test(name) && CONFIG_EXTENSIONS.has(ext);
}

/**
 * The path rule that excludes `path` (relative, '/'-separated), or undefined when the file may be
 * read. `extraExtensions` extends the source allowlist (lower-case, no dot).
 */
export function classifyPath(path: string, extraExtensions: ReadonlySet<string> = new Set()): PathVerdict | undefined {
  const folder = vendoredFolder(path);
  if (folder !== undefined) return { reason: 'vendored', folder };
  if (isSecretPath(path)) return { reason: 'secret-file' };
  const name = path.slice(path.lastIndexOf('/') + 1).toLowerCase();
  const ext = extensionOf(name);
  if (LOCK_FILES.has(name) || ext === 'lock') return { reason: 'lockfile' };
  if (BINARY_EXTENSIONS.has(ext)) return { reason: 'binary', detail: `.${ext}` };
  if (MINIFIED_NAME.test(name)) return { reason: 'minified', detail: 'file name' };
  if (GENERATED_NAME.some((p) => p.test(name))) return { reason: 'generated', detail: 'file name' };
  if (SOURCE_EXTENSIONS.has(ext) || extraExtensions.has(ext) || SOURCE_NAMES.has(name)) return undefined;
  return { reason: 'not-source', detail: ext === '' ? 'no extension' : `.${ext}` };
}
