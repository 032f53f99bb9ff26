/**
 * Free ports on 127.0.0.1, for the servers the tests and benchmarks start
 * (nginx, vsftpd): loopback only, chosen at run time so runs never collide.
 *
 * @module
 */

/** A port on 127.0.0.1 nobody listens on now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A run of n consecutive free ports (vsftpd's passive range). */
export function freeRange(n: number): [number, number] {
  for (let attempt = 0; attempt < 50; attempt++) {
    const lo = 20000 + Math.floor(Math.random() * 30000);
    const held: Deno.Listener[] = [];
    try {
      for (let p = lo; p < lo + n; p++) held.push(Deno.listen({ hostname: "127.0.0.1", port: p }));
      return [lo, lo + n - 1];
    } catch {
      // taken: try another
    } finally {
      held.forEach((l) => l.close());
    }
  }
  throw new Error("no free port range");
}
