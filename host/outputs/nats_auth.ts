/**
 * How the daemon proves itself to a NATS server (the fleet's bucket and the nats output): a token, a user and
 * password, or a NATS credentials file (JWT + nkey), each read from a root-only file when the connection is made. A
 * server without authorization lets any process that reaches it — a program the daemon wraps included — write the
 * bucket, and so every host's policies (red team rt7 F5): docs/fleet.md says to require it.
 *
 * @module
 */
import { credsAuthenticator, type NodeConnectionOptions } from "@nats-io/transport-node";

/** One way to authenticate (at most one is configured: config.ts refuses more). */
export interface NatsAuth {
  /** A file holding the server's token. */
  tokenFile?: string;
  /** A user name, with `passwordFile`. */
  user?: string;
  /** A file holding `user`'s password. */
  passwordFile?: string;
  /** A NATS credentials file (`nsc`'s `.creds`: a user JWT and its nkey seed). */
  credsFile?: string;
}

/** A secret file's text, refused if others than its owner may read it (a wrapped program could then take it). */
function secret(path: string, what: string): string {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    throw new Error(`NATS ${what} ${path}: ${(e as Error).message}`);
  }
  if ((info.mode ?? 0) & 0o077) {
    throw new Error(
      `NATS ${what} ${path} may be read by other users (mode 0${((info.mode ?? 0) & 0o777).toString(8)}): chmod 600 it`,
    );
  }
  return Deno.readTextFileSync(path).trim();
}

/** The connection options for `auth` (none: an anonymous connection). */
export function natsAuthOptions(auth: NatsAuth | undefined): Partial<NodeConnectionOptions> {
  if (!auth) return {};
  if (auth.tokenFile) return { token: secret(auth.tokenFile, "token file") };
  if (auth.user) return { user: auth.user, pass: secret(auth.passwordFile!, "password file") };
  if (auth.credsFile) {
    return { authenticator: credsAuthenticator(new TextEncoder().encode(secret(auth.credsFile, "credentials file"))) };
  }
  return {};
}
