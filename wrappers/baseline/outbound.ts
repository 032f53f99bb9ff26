/**
 * inbound-only-connect: a program that should only answer (a server) opens
 * a connection out, to an inet address its settings do not allow.
 */
import { allow, Event, SYS_connect } from "../sdk/index";
import { exePath, nameMatches, programIn } from "./lists";
import { fire, R_INBOUND_ONLY, RESP_ALERT, RESP_OFF, responses } from "./rules";
import { inboundAllowDestinations, inboundAllowLoopback, inboundOnly } from "./settings";

/** Destinations already alerted by inbound-only-connect in this process (alert response only). */
const alertedDestinations = new Array<string>(0);
const MAX_DESTINATIONS: i32 = 32;

/** "inet:1.2.3.4:80" → ["1.2.3.4", "80"]; "inet6:[::1]:80" → ["::1", "80"]; others null. */
function splitInet(addr: string): string[] | null {
  if (addr.startsWith("inet:")) {
    const rest = addr.substring(5);
    const c = rest.lastIndexOf(":");
    if (c < 0) return null;
    return [rest.substring(0, c), rest.substring(c + 1)];
  }
  if (addr.startsWith("inet6:[")) {
    const rest = addr.substring(7);
    const c = rest.lastIndexOf("]:");
    if (c < 0) return null;
    return [rest.substring(0, c), rest.substring(c + 2)];
  }
  return null;
}

/** 127.0.0.0/8, ::1, the unspecified addresses (a connect to them reaches this host) and their v4-mapped forms. */
export function isLoopback(host: string): bool {
  if (host.startsWith("127.") || host == "0.0.0.0" || host == "::1" || host == "::" || host == "::ffff:0:0") {
    return true;
  }
  // v4-mapped 127.x.y.z, as the host prints it: "::ffff:7fXX:YYYY".
  return host.startsWith("::ffff:7f") && host.length > 13 && host.charCodeAt(13) == 0x3a;
}

/** One inbound_only_allow_destinations entry: "HOST", "HOST:PORT", "[V6]:PORT", "*:PORT"; "10.1.*" a prefix. */
export function destinationMatches(entry: string, host: string, port: string): bool {
  let eh = entry.trim();
  let ep = "";
  if (eh.startsWith("[")) {
    const close = eh.indexOf("]");
    if (close < 0) return false;
    if (close + 1 < eh.length) {
      if (eh.charCodeAt(close + 1) != 0x3a) return false;
      ep = eh.substring(close + 2);
    }
    eh = eh.substring(1, close);
  } else {
    const first = eh.indexOf(":");
    if (first >= 0 && first == eh.lastIndexOf(":")) { // one colon: HOST:PORT (IPv4, or "*")
      ep = eh.substring(first + 1);
      eh = eh.substring(0, first);
    }
  }
  if (ep.length > 0 && ep != "*" && ep != port) return false;
  return eh == "*" || nameMatches(eh, host);
}

function hostPort(host: string, port: string): string {
  return host.includes(":") ? "[" + host + "]:" + port : host + ":" + port;
}

/** connect, or sendto with an address, to an inet address by a program of inbound_only. */
export function onOutbound(nr: i32): i32 {
  if (inboundOnly.length == 0 || responses[R_INBOUND_ONLY] == RESP_OFF) return allow();
  const exe = exePath();
  if (!programIn(inboundOnly, exe)) return allow();
  const addr = Event.addr();
  if (addr === null) return allow(); // sendto on a connected socket
  const hp = splitInet(addr);
  if (hp === null) return allow(); // unix, netlink, AF_UNSPEC
  const host = hp[0];
  const port = hp[1];
  if (inboundAllowLoopback && isLoopback(host)) return allow();
  for (let i = 0; i < inboundAllowDestinations.length; i++) {
    if (destinationMatches(inboundAllowDestinations[i], host, port)) return allow();
  }
  const dest = hostPort(host, port);
  if (responses[R_INBOUND_ONLY] == RESP_ALERT) {
    // One alert per destination and process: a UDP sender would raise one per datagram.
    for (let i = 0; i < alertedDestinations.length; i++) if (alertedDestinations[i] == dest) return allow();
    if (alertedDestinations.length >= MAX_DESTINATIONS) alertedDestinations.shift();
    alertedDestinations.push(dest);
  }
  const call = nr == SYS_connect ? "connect to " : "sendto ";
  return fire(R_INBOUND_ONLY, "outbound " + call + dest + " from an inbound-only program", "T1071");
}

/** Forgets the destinations alerted so far: a new program starts with none. */
export function forgetDestinations(): void {
  alertedDestinations.length = 0;
}
