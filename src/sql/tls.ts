/**
 * TLS as URLs ask for it (the files named, how much of the server to verify) and as the drivers take it
 * (`pg` and `mysql2` both pass these settings to `tls.connect`). Certificate files are read when a
 * connection is configured, not when the URL is parsed, so parsing stays free of I/O.
 */
import { readFile } from 'node:fs/promises';
import type { BatonError } from '../core/errors.js';

/** A certificate or key file, with the URL option that named it (for messages). */
export interface TlsFile {
  readonly option: string;
  readonly path: string;
}

/** An encrypted connection as a URL asks for it. */
export interface SqlTls {
  /**
   * How much of the server is verified: `none` (encrypted only), `chain` (the certificate chain, not the
   * host name), `full` (chain and host name).
   */
  readonly verify: 'none' | 'chain' | 'full';
  /** The CA(s) the server certificate must chain to; the system CAs when absent. */
  readonly ca?: TlsFile;
  /** A client certificate and its key, always together. */
  readonly cert?: TlsFile;
  readonly key?: TlsFile;
}

/** What `tls.connect` gets, through the driver. */
export interface TlsSettings {
  readonly rejectUnauthorized: boolean;
  readonly ca?: string;
  readonly cert?: string;
  readonly key?: string;
  /** `chain`: the chain is checked, the host name is not. */
  readonly checkServerIdentity?: () => undefined;
}

/**
 * Reads the files `tls` names and returns the driver's settings (undefined for a plain connection).
 * @throws `refuse(...)` naming the option and the file that cannot be read.
 */
export async function tlsSettings(tls: SqlTls | undefined, refuse: (what: string) => BatonError): Promise<TlsSettings | undefined> {
  if (!tls) return undefined;
  const read = async (file: TlsFile | undefined): Promise<string | undefined> => {
    if (!file) return undefined;
    try {
      return await readFile(file.path, 'utf8');
    } catch (error) {
      throw refuse(`${file.option}: cannot read ${JSON.stringify(file.path)}: ${(error as Error).message}`);
    }
  };
  const [ca, cert, key] = await Promise.all([read(tls.ca), read(tls.cert), read(tls.key)]);
  return {
    rejectUnauthorized: tls.verify !== 'none',
    ...(ca !== undefined ? { ca } : {}),
    ...(cert !== undefined ? { cert } : {}),
    ...(key !== undefined ? { key } : {}),
    ...(tls.verify === 'chain' ? { checkServerIdentity: () => undefined } : {}),
  };
}
