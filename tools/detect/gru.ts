/**
 * A small recurrent language model over system-call numbers, for measuring
 * whether a neural sequence model beats the n-gram models (issue 18,
 * docs/detect.md): one GRU layer, trained offline on normal traces with
 * truncated backpropagation through time and Adam, scoring each call by its
 * surprisal −log2 P(call | the calls before it in the trace).
 *
 * The input "embedding" is a per-symbol table of the three gates' input
 * projections (a one-hot input times W, plus the biases): the same function
 * as an embedding followed by W, with one lookup per call. Float32Array
 * throughout; deterministic for a given seed.
 *
 * @module
 */

/** Model shape: `vocab` symbols (0 = a call not seen in training, 1 = start of trace), `hidden` units. */
export interface GruShape {
  vocab: number;
  hidden: number;
}

/** The parameters, row-major: x[v][3H] (gates z, r, n), u[3H][H], bu[H] (n's recurrent bias), wo[V][H], bo[V]. */
export interface GruParams {
  x: Float32Array;
  u: Float32Array;
  bu: Float32Array;
  wo: Float32Array;
  bo: Float32Array;
}

/** A symbol table: call number → model symbol (2..); unseen calls map to 0, the start of a trace is 1. */
export class Vocabulary {
  readonly #index = new Map<number, number>();
  readonly calls: number[] = [];

  constructor(calls: Iterable<number>) {
    for (const c of [...new Set(calls)].sort((a, b) => a - b)) {
      this.#index.set(c, this.calls.length + 2);
      this.calls.push(c);
    }
  }

  get size(): number {
    return this.calls.length + 2;
  }

  /** The trace as model symbols, with the start symbol first. */
  encode(nrs: readonly number[]): Int32Array {
    const out = new Int32Array(nrs.length + 1);
    out[0] = 1;
    for (let i = 0; i < nrs.length; i++) out[i + 1] = this.#index.get(nrs[i]) ?? 0;
    return out;
  }
}

/** A small deterministic PRNG (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function initParams(shape: GruShape, seed: number): GruParams {
  const { vocab: V, hidden: H } = shape;
  const r = rng(seed);
  const uni = (n: number, s: number) => Float32Array.from({ length: n }, () => (r() * 2 - 1) * s);
  const x = uni(V * 3 * H, 0.1);
  // The update gate starts biased towards keeping the state (a common GRU initialisation).
  for (let v = 0; v < V; v++) for (let j = 0; j < H; j++) x[v * 3 * H + j] += 1;
  return {
    x,
    u: uni(3 * H * H, 1 / Math.sqrt(H)),
    bu: new Float32Array(H),
    wo: uni(V * H, 1 / Math.sqrt(H)),
    bo: new Float32Array(V),
  };
}

const sigmoid = (a: number) => 1 / (1 + Math.exp(-a));

/** What one step keeps for the backward pass. */
interface Step {
  hPrev: Float32Array;
  z: Float32Array;
  r: Float32Array;
  n: Float32Array;
  /** U_n h_prev + b_u, before the reset gate multiplies it. */
  un: Float32Array;
  h: Float32Array;
  /** Softmax over the next symbol. */
  p: Float32Array;
}

/** The GRU step: h' = (1 − z) n + z h, n = tanh(x_n + r (U_n h + b_u)). Writes into `s`. */
function step(shape: GruShape, p: GruParams, sym: number, hPrev: Float32Array, s: Step): void {
  const H = shape.hidden;
  const xo = sym * 3 * H;
  for (let j = 0; j < H; j++) {
    let az = p.x[xo + j], ar = p.x[xo + H + j], un = p.bu[j];
    const rz = j * H, rr = (H + j) * H, rn = (2 * H + j) * H;
    for (let k = 0; k < H; k++) {
      const hk = hPrev[k];
      az += p.u[rz + k] * hk;
      ar += p.u[rr + k] * hk;
      un += p.u[rn + k] * hk;
    }
    s.z[j] = sigmoid(az);
    s.r[j] = sigmoid(ar);
    s.un[j] = un;
  }
  for (let j = 0; j < H; j++) {
    s.n[j] = Math.tanh(p.x[xo + 2 * H + j] + s.r[j] * s.un[j]);
    s.h[j] = (1 - s.z[j]) * s.n[j] + s.z[j] * hPrev[j];
  }
  s.hPrev.set(hPrev);
}

/** Softmax of W_o h + b_o into `out`; returns nothing (out sums to 1). */
function output(shape: GruShape, p: GruParams, h: Float32Array, out: Float32Array): void {
  const { vocab: V, hidden: H } = shape;
  let max = -Infinity;
  for (let v = 0; v < V; v++) {
    let a = p.bo[v];
    const o = v * H;
    for (let k = 0; k < H; k++) a += p.wo[o + k] * h[k];
    out[v] = a;
    if (a > max) max = a;
  }
  let sum = 0;
  for (let v = 0; v < V; v++) {
    out[v] = Math.exp(out[v] - max);
    sum += out[v];
  }
  for (let v = 0; v < V; v++) out[v] /= sum;
}

function newStep(shape: GruShape): Step {
  const H = shape.hidden;
  const f = () => new Float32Array(H);
  return { hPrev: f(), z: f(), r: f(), n: f(), un: f(), h: f(), p: new Float32Array(shape.vocab) };
}

/** Per-call surprisal in bits of a trace (its symbols from `Vocabulary.encode`): one value per call. */
export function surprisals(shape: GruShape, p: GruParams, syms: Int32Array): number[] {
  const s = newStep(shape);
  const h = new Float32Array(shape.hidden);
  const out: number[] = [];
  for (let t = 0; t + 1 < syms.length; t++) {
    step(shape, p, syms[t], h, s);
    h.set(s.h);
    output(shape, p, h, s.p);
    out.push(-Math.log2(Math.max(s.p[syms[t + 1]], 1e-30)));
  }
  return out;
}

/** Adam over the flat parameter arrays, with gradient-norm clipping. */
class Adam {
  readonly #m: Float32Array[];
  readonly #v: Float32Array[];
  #t = 0;
  constructor(readonly params: Float32Array[], public lr: number, readonly clip = 5) {
    this.#m = params.map((a) => new Float32Array(a.length));
    this.#v = params.map((a) => new Float32Array(a.length));
  }
  update(grads: Float32Array[]): void {
    let norm = 0;
    for (const g of grads) for (let i = 0; i < g.length; i++) norm += g[i] * g[i];
    norm = Math.sqrt(norm);
    const scale = norm > this.clip ? this.clip / norm : 1;
    this.#t++;
    const b1 = 0.9, b2 = 0.999, eps = 1e-8;
    const c1 = 1 - b1 ** this.#t, c2 = 1 - b2 ** this.#t;
    for (let a = 0; a < this.params.length; a++) {
      const p = this.params[a], g = grads[a], m = this.#m[a], v = this.#v[a];
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * scale;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= this.lr * (m[i] / c1) / (Math.sqrt(v[i] / c2) + eps);
      }
    }
  }
}

export interface TrainOptions {
  epochs: number;
  /** Truncated BPTT length: gradients flow back this many calls; the state carries on across chunks. */
  bptt: number;
  lr: number;
  /** The learning rate is multiplied by this after each epoch (1: constant). */
  lrDecay?: number;
  seed: number;
  /** Mean bits per call on the held-out traces, after each epoch; return false to stop. */
  onEpoch?: (epoch: number, trainBits: number, heldOutBits: number, params: GruParams) => boolean;
  /** Sees each chunk's gradients (of the mean natural-log loss) before the update: for gradient checks. */
  onGradients?: (grads: Float32Array[]) => void;
}

/** Mean surprisal in bits per call over traces. */
export function meanBits(shape: GruShape, p: GruParams, traces: Int32Array[]): number {
  let sum = 0, n = 0;
  for (const t of traces) {
    const s = surprisals(shape, p, t);
    for (const v of s) sum += v;
    n += s.length;
  }
  return sum / Math.max(n, 1);
}

/**
 * Trains on `train` (encoded traces), in a shuffled order each epoch, one
 * Adam update per BPTT chunk; `heldOut` is only measured (for early stopping).
 */
export function train(
  shape: GruShape,
  p: GruParams,
  trainSet: Int32Array[],
  heldOut: Int32Array[],
  o: TrainOptions,
): void {
  const { vocab: V, hidden: H } = shape;
  const arrays = [p.x, p.u, p.bu, p.wo, p.bo];
  const grads = arrays.map((a) => new Float32Array(a.length));
  const [gx, gu, gbu, gwo, gbo] = grads;
  const adam = new Adam(arrays, o.lr);
  const steps = Array.from({ length: o.bptt }, () => newStep(shape));
  const r = rng(o.seed + 1);
  const dh = new Float32Array(H), dhPrev = new Float32Array(H);
  const dz = new Float32Array(H), dr = new Float32Array(H), dn = new Float32Array(H), dun = new Float32Array(H);
  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const order = trainSet.map((_, i) => i);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [order[i], order[j]] = [order[j], order[i]];
    }
    let lossSum = 0, lossN = 0;
    for (const ti of order) {
      const syms = trainSet[ti];
      let h: Float32Array = new Float32Array(H);
      for (let start = 0; start + 1 < syms.length; start += o.bptt) {
        const T = Math.min(o.bptt, syms.length - 1 - start);
        // Forward over the chunk.
        for (let t = 0; t < T; t++) {
          const s = steps[t];
          step(shape, p, syms[start + t], h, s);
          h = s.h;
          output(shape, p, s.h, s.p);
          lossSum -= Math.log2(Math.max(s.p[syms[start + t + 1]], 1e-30));
        }
        lossN += T;
        h = Float32Array.from(h);
        // Backward.
        for (const g of grads) g.fill(0);
        dh.fill(0);
        for (let t = T - 1; t >= 0; t--) {
          const s = steps[t];
          const target = syms[start + t + 1];
          // d loss / d logits = p − onehot (natural log; scaled by 1/T per chunk).
          for (let v = 0; v < V; v++) {
            const d = (s.p[v] - (v === target ? 1 : 0)) / T;
            if (d === 0) continue;
            gbo[v] += d;
            const ro = v * H;
            for (let k = 0; k < H; k++) {
              gwo[ro + k] += d * s.h[k];
              dh[k] += p.wo[ro + k] * d;
            }
          }
          for (let j = 0; j < H; j++) {
            const dnj = dh[j] * (1 - s.z[j]) * (1 - s.n[j] * s.n[j]);
            dn[j] = dnj;
            dz[j] = dh[j] * (s.hPrev[j] - s.n[j]) * s.z[j] * (1 - s.z[j]);
            dun[j] = dnj * s.r[j];
            dr[j] = dnj * s.un[j] * s.r[j] * (1 - s.r[j]);
            dhPrev[j] = dh[j] * s.z[j];
          }
          const xo = syms[start + t] * 3 * H;
          for (let j = 0; j < H; j++) {
            gx[xo + j] += dz[j];
            gx[xo + H + j] += dr[j];
            gx[xo + 2 * H + j] += dn[j];
            gbu[j] += dun[j];
            const rz = j * H, rr = (H + j) * H, rn = (2 * H + j) * H;
            const a = dz[j], b = dr[j], c = dun[j];
            for (let k = 0; k < H; k++) {
              const hk = s.hPrev[k];
              gu[rz + k] += a * hk;
              gu[rr + k] += b * hk;
              gu[rn + k] += c * hk;
              dhPrev[k] += p.u[rz + k] * a + p.u[rr + k] * b + p.u[rn + k] * c;
            }
          }
          dh.set(dhPrev);
        }
        o.onGradients?.(grads);
        adam.update(grads);
      }
    }
    adam.lr *= o.lrDecay ?? 1;
    const held = heldOut.length ? meanBits(shape, p, heldOut) : NaN;
    if (o.onEpoch && !o.onEpoch(epoch, lossSum / lossN, held, p)) return;
  }
}

/** Copies parameters (for keeping the best epoch). */
export function cloneParams(p: GruParams): GruParams {
  return { x: p.x.slice(), u: p.u.slice(), bu: p.bu.slice(), wo: p.wo.slice(), bo: p.bo.slice() };
}
