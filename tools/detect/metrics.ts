/**
 * Detection metrics over per-trace scores where a larger score means more
 * abnormal: ROC AUC (ties count one half) and the detection rate at a
 * given false-alarm rate.
 *
 * @module
 */

/** ROC AUC: the probability that a random attack trace outscores a random normal one, ties counted half. */
export function auc(normal: readonly number[], attack: readonly number[]): number {
  if (normal.length === 0 || attack.length === 0) return NaN;
  const all = [...normal.map((s) => [s, 0] as const), ...attack.map((s) => [s, 1] as const)];
  all.sort((a, b) => a[0] - b[0]);
  // Rank-sum (Mann–Whitney U) with average ranks for ties.
  let rankSumAttack = 0;
  for (let i = 0; i < all.length;) {
    let j = i;
    while (j < all.length && all[j][0] === all[i][0]) j++;
    const avgRank = (i + 1 + j) / 2;
    for (let t = i; t < j; t++) if (all[t][1] === 1) rankSumAttack += avgRank;
    i = j;
  }
  const nA = attack.length;
  const nN = normal.length;
  return (rankSumAttack - nA * (nA + 1) / 2) / (nA * nN);
}

/**
 * The threshold that keeps false alarms at or below `fpr` of the normal
 * traces (an alarm is a score strictly above the threshold), and the share
 * of attack traces above it.
 */
export function detectionAt(
  normal: readonly number[],
  attack: readonly number[],
  fpr: number,
): { threshold: number; detectionRate: number; falseAlarmRate: number } {
  const sorted = [...normal].sort((a, b) => b - a);
  const allowed = Math.floor(fpr * sorted.length);
  // Alarms are scores > threshold; choose the threshold at the (allowed)-th largest normal score.
  let threshold = sorted[Math.min(allowed, sorted.length - 1)];
  // Ties at the threshold are not alarms; that can only lower false alarms.
  if (allowed >= sorted.length) threshold = -Infinity;
  const fa = normal.filter((s) => s > threshold).length / normal.length;
  const dr = attack.filter((s) => s > threshold).length / attack.length;
  return { threshold, detectionRate: dr, falseAlarmRate: fa };
}
