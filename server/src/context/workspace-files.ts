// What the context sources need from the workspace, as interfaces: the dataset layer implements
// them with its safe reading, path rules and secret scrubbing (dataset/context-files.ts), so a
// snippet never carries a secret or a file the fine-tune would refuse.

export interface ContextPolicy {
  /**
   * The text a snippet may be taken from for `path` — secret lines blanked — or undefined when the
   * fine-tune would refuse the file (a secret path, vendored, generated, minified, binary, not source).
   */
  admit(path: string, text: string): string | undefined;
}

export interface WorkspaceFiles {
  /** Workspace-relative paths ("/"-separated) of the files that pass the path rules, bounded. */
  list(signal?: AbortSignal): Promise<string[]>;
  /** A file's admitted text (read safely, checked and scrubbed), or undefined when refused or gone. */
  read(path: string): Promise<string | undefined>;
  /**
   * Whether the workspace's rules refuse a file at `path` whatever its text — ignored by git or an
   * ignore file, a link (or under a linked folder) out of the workspace, not a regular file — so an
   * open document there gives no context either.
   */
  refuses?(path: string): Promise<boolean>;
}
