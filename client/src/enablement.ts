// Whether Kiln suggests in a document: the global toggle, then `kiln.enable` per language id.

export type EnableMap = Record<string, boolean>;

export function enabledForLanguage(map: EnableMap | undefined, languageId: string): boolean {
  if (!map) return true;
  if (typeof map[languageId] === 'boolean') return map[languageId]!;
  return typeof map['*'] === 'boolean' ? map['*']! : true;
}
