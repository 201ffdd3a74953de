/**
 * The structure of an identity file (Teleport's layout), nothing more:
 *
 *   private key PEM
 *   [OpenSSH certificate line]
 *   TLS certificate PEM
 *   [@cert-authority lines]
 *   CA certificate PEM, one or more
 *
 * Reader rule: the first PEM block is the key, the second the certificate,
 * every later block a trusted CA; lines outside PEM blocks are ignored (the SSH
 * line and `@cert-authority` lines are kept so a rewrite preserves them). A
 * block without its END line is "torn": that is what a reader sees while a
 * renewing agent rewrites the file in place. Cryptographic checks are in
 * load.ts. node:* only: this is on `connect`'s start-up path.
 */
import { AccessError } from '../errors.js';

export interface IdentityFileParts {
  keyPem: string;
  sshCertLine?: string;
  certPem: string;
  authorityLines: string[];
  caPems: string[];
}

export interface PemBlock {
  label: string;
  /** Normalised text: BEGIN line, body, END line, each ending in "\n". */
  pem: string;
  /** 1-based line of the BEGIN line. */
  line: number;
}

const BEGIN = /^-----BEGIN ([A-Z0-9 ]+)-----$/;
const END = /^-----END ([A-Z0-9 ]+)-----$/;
const SSH_CERT = /^\S+-cert-v0\d@openssh\.com\s/;
const KEY_LABELS = new Set(['PRIVATE KEY', 'RSA PRIVATE KEY', 'EC PRIVATE KEY', 'ENCRYPTED PRIVATE KEY']);

/** Split text into PEM blocks and the lines outside them. Throws IDENTITY_TORN. */
export function splitPem(text: string, path: string): { blocks: PemBlock[]; otherLines: string[] } {
  const lines = text.split(/\r?\n/);
  const blocks: PemBlock[] = [];
  const otherLines: string[] = [];
  let open: { label: string; line: number; body: string[] } | undefined;
  const torn = (why: string) => new AccessError('IDENTITY_TORN', `identity file ${path} is torn: ${why}`);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    const n = i + 1;
    if (open) {
      const end = END.exec(line);
      if (end) {
        if (end[1] !== open.label)
          throw torn(`the ${open.label} block at line ${open.line} ends with a ${end[1]} END line at line ${n}`);
        blocks.push({
          label: open.label,
          line: open.line,
          pem: `-----BEGIN ${open.label}-----\n${open.body.join('\n')}\n-----END ${open.label}-----\n`,
        });
        open = undefined;
      } else if (line.startsWith('-----')) {
        throw torn(`the ${open.label} block at line ${open.line} is cut off at line ${n}`);
      } else if (line !== '') {
        open.body.push(line);
      }
      continue;
    }
    const begin = BEGIN.exec(line);
    if (begin) {
      open = { label: begin[1]!, line: n, body: [] };
    } else if (line.startsWith('-----BEGIN') || line.startsWith('-----END')) {
      throw torn(`line ${n} is a broken PEM boundary`);
    } else if (line !== '') {
      otherLines.push(line);
    }
  }
  if (open) throw torn(`the ${open.label} block at line ${open.line} has no END line (cut off at the end of the file)`);
  return { blocks, otherLines };
}

export function parseIdentityFile(text: string, path: string): IdentityFileParts {
  if (text.trim() === '') throw new AccessError('IDENTITY_EMPTY', `identity file ${path} is empty`);
  const { blocks, otherLines } = splitPem(text, path);
  const [key, cert, ...cas] = blocks;
  if (!key) throw new AccessError('IDENTITY_NO_KEY', `identity file ${path} contains no PEM blocks`);
  if (!KEY_LABELS.has(key.label)) {
    throw new AccessError(
      'IDENTITY_NO_KEY',
      `identity file ${path} does not start with a private key (its first PEM block, line ${key.line}, is a ${key.label})`,
    );
  }
  if (!cert) throw new AccessError('IDENTITY_NO_CERT', `identity file ${path} has a private key but no certificate`);
  if (cert.label !== 'CERTIFICATE') {
    throw new AccessError(
      'IDENTITY_NO_CERT',
      `identity file ${path}: the second PEM block (line ${cert.line}) is a ${cert.label}, not the certificate`,
    );
  }
  if (cas.length === 0)
    throw new AccessError('IDENTITY_NO_CA', `identity file ${path} has no CA certificate after its certificate`);
  const notCert = cas.find((b) => b.label !== 'CERTIFICATE');
  if (notCert) {
    throw new AccessError(
      'IDENTITY_BAD_CERT',
      `identity file ${path}: the PEM block at line ${notCert.line} is a ${notCert.label}, but every block after the certificate must be a CA certificate`,
    );
  }
  return {
    keyPem: key.pem,
    sshCertLine: otherLines.find((l) => SSH_CERT.test(l)),
    certPem: cert.pem,
    authorityLines: otherLines.filter((l) => l.startsWith('@cert-authority')),
    caPems: cas.map((b) => b.pem),
  };
}

export function formatIdentityFile(parts: IdentityFileParts): string {
  const block = (pem: string) => (pem.endsWith('\n') ? pem : `${pem}\n`);
  let out = block(parts.keyPem);
  if (parts.sshCertLine) out += `${parts.sshCertLine.trim()}\n`;
  out += block(parts.certPem);
  for (const line of parts.authorityLines) out += `${line.trim()}\n`;
  for (const ca of parts.caPems) out += block(ca);
  return out;
}
