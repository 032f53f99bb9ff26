/**
 * Socket addresses as idwrap prints them everywhere (events, the ABI's
 * field 2, wr_getpeername): `inet:127.0.0.1:80`, `inet6:[::1]:80`,
 * `unix:/path`, `unix:@abstract`, `unix:` (unnamed).
 *
 * @module
 */

/** An IPv4 address and port as `inet:127.0.0.1:80`. */
export function inetAddress(addr: Uint8Array, port: number): string {
  return `inet:${Array.from(addr.subarray(0, 4)).join(".")}:${port}`;
}

/** An IPv6 address (16 bytes, network order) and port as `inet6:[::1]:80`. */
export function inet6Address(addr: Uint8Array, port: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 8; i++) groups.push(((addr[i * 2] << 8) | addr[i * 2 + 1]).toString(16));
  // Compress the first longest run of zero groups (RFC 5952).
  const text = groups.join(":");
  const runs = [...text.matchAll(/(^|:)0(:0)+(:|$)/g)].sort((a, b) => b[0].length - a[0].length);
  return `inet6:[${runs.length ? text.replace(runs[0][0], "::") : text}]:${port}`;
}

/** A unix socket path (bytes after sun_family) as `unix:/path`, `unix:@abstract` or `unix:`. */
export function unixAddress(path: Uint8Array): string {
  if (path.length === 0) return "unix:";
  const decoder = new TextDecoder();
  if (path[0] === 0) return "unix:@" + decoder.decode(path.subarray(1)).replace(/\0+$/, "");
  const end = path.indexOf(0);
  return "unix:" + decoder.decode(end >= 0 ? path.subarray(0, end) : path);
}

/** A struct sockaddr as `inet:127.0.0.1:80`, `inet6:[::1]:80` or `unix:/path`. */
export function sockaddrToString(bytes: Uint8Array): string {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 2) return "invalid";
  const family = view.getUint16(0, true);
  if (family === 2 && bytes.length >= 8) return inetAddress(bytes.subarray(4, 8), view.getUint16(2, false));
  if (family === 10 && bytes.length >= 24) return inet6Address(bytes.subarray(8, 24), view.getUint16(2, false));
  if (family === 1) return unixAddress(bytes.subarray(2));
  if (family === 16) return "netlink";
  if (family === 17) return "packet";
  return `family:${family}`;
}
