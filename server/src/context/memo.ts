// A function's answers kept by argument, for the many repeated questions one document asks
// (which files a query may return, the tokens of a snippet shared by several blocks).

export function memoized<K, V>(compute: (key: K) => V): (key: K) => V {
  const known = new Map<K, V>();
  return (key) => {
    if (known.has(key)) return known.get(key) as V;
    const value = compute(key);
    known.set(key, value);
    return value;
  };
}
