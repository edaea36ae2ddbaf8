/** A model file that cannot be used: always names the file and what is wrong with it. */
export class ModelFileError extends Error {
  constructor(
    readonly file: string,
    readonly problem: string,
  ) {
    super(`${file}: ${problem}`);
    this.name = 'ModelFileError';
  }
}
