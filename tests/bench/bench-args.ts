// Command-line flags of the benchmarks: one cursor over argv that reads and checks each flag's value.

export class BenchArgs {
  private at = -1;

  constructor(private readonly argv: readonly string[]) {}

  /** The next flag, or undefined past the end. */
  flag(): string | undefined {
    return this.argv[++this.at];
  }

  /** The value after the current flag. */
  value(): string {
    const flag = this.argv[this.at];
    const v = this.argv[++this.at];
    if (v === undefined) throw new Error(`${flag} needs a value`);
    return v;
  }

  positiveInt(): number {
    const flag = this.argv[this.at];
    const n = Number(this.value());
    if (!Number.isInteger(n) || n <= 0) throw new Error(`${flag} needs a positive integer`);
    return n;
  }

  oneOf<T extends string>(choices: readonly T[]): T {
    const flag = this.argv[this.at];
    const v = this.value();
    if (!choices.includes(v as T)) throw new Error(`${flag} must be one of ${choices.join(', ')}`);
    return v as T;
  }
}
