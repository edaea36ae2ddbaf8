// A small ONNX graph builder. ORT's own builders are Python; Kiln writes ModelProto from TypeScript
// so that inference and training graphs come from one model definition at run time.
// Node names are hierarchical (`/model/layers.0/attn/q_proj/MatMul`); constants are deduplicated;
// weights are initializers whose bytes are produced lazily, one tensor at a time, when saved.
import { onnx } from 'onnx-proto';

export type ElemType = 'float32' | 'float16' | 'int64' | 'int32' | 'bool' | 'uint8' | 'int8';
export type Dim = number | string;
export type AttrValue = number | string | number[] | { floats: number[] } | { float: number };

export const ELEM: Record<ElemType, onnx.TensorProto.DataType> = {
  float32: onnx.TensorProto.DataType.FLOAT,
  float16: onnx.TensorProto.DataType.FLOAT16,
  int64: onnx.TensorProto.DataType.INT64,
  int32: onnx.TensorProto.DataType.INT32,
  bool: onnx.TensorProto.DataType.BOOL,
  uint8: onnx.TensorProto.DataType.UINT8,
  int8: onnx.TensorProto.DataType.INT8,
};

export const ELEM_BYTES: Record<ElemType, number> = { float32: 4, float16: 2, int64: 8, int32: 4, bool: 1, uint8: 1, int8: 1 };

/** A weight whose bytes are produced only when the model is written. */
export interface LazyInitializer {
  name: string;
  elemType: ElemType;
  shape: number[];
  bytes: () => Uint8Array;
}

interface ValueInfo {
  name: string;
  elemType: ElemType;
  shape: Dim[];
}

function toBytes(a: Float32Array | Uint16Array | BigInt64Array | Int32Array | Uint8Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

function attribute(name: string, v: AttrValue): onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  if (typeof v === 'string') return { name, type: T.STRING, s: Buffer.from(v, 'utf8') };
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new Error(`attribute ${name}: use { float } for non-integers`);
    return { name, type: T.INT, i: v };
  }
  if (Array.isArray(v)) return { name, type: T.INTS, ints: v };
  if ('floats' in v) return { name, type: T.FLOATS, floats: v.floats };
  return { name, type: T.FLOAT, f: v.float };
}

export class GraphBuilder {
  private readonly nodes: onnx.INodeProto[] = [];
  private readonly inputs: ValueInfo[] = [];
  private readonly outputs: ValueInfo[] = [];
  private readonly constants: onnx.ITensorProto[] = [];
  private readonly constantByKey = new Map<string, string>();
  readonly initializers: LazyInitializer[] = [];
  private readonly scopes: string[] = [];
  private readonly usedNames = new Map<string, number>();
  /** While set, every node's input names pass through it (a recomputed segment's backward, diff-graph.ts). */
  private inputNames: ((name: string) => string) | undefined;

  constructor(readonly graphName: string) {}

  /** Nodes added so far: a mark for `producersSince`. */
  get nodeCount(): number {
    return this.nodes.length;
  }

  /** Each output name of the nodes added since `mark`, with the node that makes it. */
  producersSince(mark: number): Map<string, onnx.INodeProto> {
    const producers = new Map<string, onnx.INodeProto>();
    for (const node of this.nodes.slice(mark)) for (const out of node.output ?? []) producers.set(out, node);
    return producers;
  }

  /** Runs `fn` with every node's inputs renamed by `rename`. */
  withInputNames<T>(rename: (name: string) => string, fn: () => T): T {
    const outer = this.inputNames;
    this.inputNames = rename;
    try {
      return fn();
    } finally {
      this.inputNames = outer;
    }
  }

  /** A copy of `node` reading `inputs` (names taken as they are), with outputs of its own; returns them. */
  copyNode(node: onnx.INodeProto, inputs: string[]): string[] {
    const name = this.uniqueNodeName(`${node.opType}_recomputed`);
    const outs = (node.output ?? []).map((_, i) => `${name}/output_${i}`);
    this.nodes.push({ ...node, name, input: inputs, output: outs });
    return outs;
  }

  /** Runs `fn` with `name` appended to the node-name hierarchy. */
  scope<T>(name: string, fn: () => T): T {
    this.scopes.push(name);
    try {
      return fn();
    } finally {
      this.scopes.pop();
    }
  }

  private uniqueNodeName(opType: string): string {
    const base = `/${[...this.scopes, opType].join('/')}`;
    const n = this.usedNames.get(base) ?? 0;
    this.usedNames.set(base, n + 1);
    return n === 0 ? base : `${base}_${n}`;
  }

  input(name: string, elemType: ElemType, shape: Dim[]): string {
    this.inputs.push({ name, elemType, shape });
    return name;
  }

  /** Marks `value` as a graph output named `name` (an Identity when the names differ). */
  output(value: string, name: string, elemType: ElemType, shape: Dim[]): string {
    if (value !== name) this.node('Identity', [value], {}, { outputs: [name] });
    this.outputs.push({ name, elemType, shape });
    return name;
  }

  /** Adds a node; returns its output names (one unless `outputs` says otherwise). */
  node(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, opts: { domain?: string; outputs?: number | string[] } = {}): string[] {
    const nodeName = this.uniqueNodeName(opType);
    if (this.inputNames !== undefined) inputs = inputs.map(this.inputNames);
    const outs = Array.isArray(opts.outputs) ? opts.outputs : Array.from({ length: opts.outputs ?? 1 }, (_, i) => `${nodeName}/output_${i}`);
    this.nodes.push({
      name: nodeName,
      opType,
      domain: opts.domain ?? '',
      input: inputs,
      output: outs,
      attribute: Object.entries(attrs).map(([k, v]) => attribute(k, v)),
    });
    return outs;
  }

  /** Single-output node. */
  op(opType: string, inputs: string[], attrs: Record<string, AttrValue> = {}, domain?: string): string {
    return this.node(opType, inputs, attrs, { domain })[0]!;
  }

  private constant(elemType: ElemType, shape: number[], bytes: Uint8Array, key: string): string {
    const existing = this.constantByKey.get(key);
    if (existing) return existing;
    const name = `/const/${elemType}_${this.constants.length}`;
    this.constants.push({ name, dataType: ELEM[elemType], dims: shape, rawData: Uint8Array.from(bytes) });
    this.constantByKey.set(key, name);
    return name;
  }

  /** An int64 constant; a scalar when `shape` is []. */
  int64(values: number[], shape: number[] = [values.length]): string {
    return this.constant('int64', shape, toBytes(BigInt64Array.from(values, BigInt)), `i64:${shape}:${values}`);
  }

  /** A uint8 scalar constant. */
  uint8Scalar(value: number): string {
    return this.constant('uint8', [], Uint8Array.of(value), `u8::${value}`);
  }

  float32(values: number[], shape: number[] = [values.length]): string {
    const data = Float32Array.from(values);
    return this.constant('float32', shape, toBytes(data), `f32:${shape}:${Array.from(data)}`);
  }

  /** A weight; `bytes` is called once, when the model is written. */
  weight(name: string, elemType: ElemType, shape: number[], bytes: () => Float32Array | Uint16Array | Uint8Array): string {
    this.initializers.push({ name, elemType, shape, bytes: () => toBytes(bytes()) });
    return name;
  }

  /**
   * The ModelProto with weights stored as external data in `dataFile`, at the offsets given by
   * `offsets` (name -> [offset, length], or [offset, length, file] for a weight kept in another file
   * of the same folder, as an adapter graph keeps its base weights); see `writeModel`.
   */
  toModelProto(dataFile: string, offsets: ReadonlyMap<string, [number, number] | [number, number, string]>, opsets: Record<string, number>): onnx.IModelProto {
    const valueInfo = (v: ValueInfo): onnx.IValueInfoProto => ({
      name: v.name,
      type: { tensorType: { elemType: ELEM[v.elemType], shape: { dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) } } },
    });
    const external: onnx.ITensorProto[] = this.initializers.map((w) => {
      const at = offsets.get(w.name);
      if (!at) throw new Error(`weight ${w.name} was not written`);
      return {
        name: w.name,
        dataType: ELEM[w.elemType],
        dims: w.shape,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: at[2] ?? dataFile },
          { key: 'offset', value: String(at[0]) },
          { key: 'length', value: String(at[1]) },
        ],
      };
    });
    return {
      irVersion: 10,
      producerName: 'kiln',
      opsetImport: Object.entries(opsets).map(([domain, version]) => ({ domain, version })),
      graph: {
        name: this.graphName,
        node: this.nodes,
        input: this.inputs.map(valueInfo),
        output: this.outputs.map(valueInfo),
        initializer: [...this.constants, ...external],
      },
    };
  }
}
