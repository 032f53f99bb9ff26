/**
 * Checks tools/detect/gru.ts's backpropagation against finite differences
 * on a tiny model: prints the worst relative error over a sample of the
 * parameters and fails above 1 %. Run: deno run tools/detect/gru_check.ts
 *
 * @module
 */
import { initParams, surprisals, train } from "./gru.ts";

const shape = { vocab: 7, hidden: 5 };
const p = initParams(shape, 3);
const syms = Int32Array.from([1, 2, 3, 4, 2, 3, 0, 5, 6, 2, 2, 3]);
let grads: Float32Array[] = [];
// One chunk covering the whole trace, learning rate 0: the gradients of the mean natural-log loss, parameters unchanged.
train(shape, p, [syms], [], {
  epochs: 1,
  bptt: 50,
  lr: 0,
  seed: 1,
  onGradients: (g) => grads = g.map((x) => x.slice()),
});
const loss = () => {
  const s = surprisals(shape, p, syms);
  return s.reduce((x, y) => x + y, 0) / s.length * Math.LN2;
};
const arrays = [p.x, p.u, p.bu, p.wo, p.bo];
let worst = 0;
for (let a = 0; a < arrays.length; a++) {
  for (let i = 0; i < arrays[a].length; i += 3) {
    const o = arrays[a][i], e = 1e-2;
    arrays[a][i] = o + e;
    const up = loss();
    arrays[a][i] = o - e;
    const down = loss();
    arrays[a][i] = o;
    const numeric = (up - down) / (2 * e);
    worst = Math.max(
      worst,
      Math.abs(numeric - grads[a][i]) / Math.max(1e-3, Math.abs(numeric) + Math.abs(grads[a][i])),
    );
  }
}
console.log(`worst relative error ${worst.toExponential(2)}`);
if (!(worst < 0.01)) Deno.exit(1);
