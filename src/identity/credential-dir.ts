/**
 * A machine's credential directory: the bot's destination (what `connect -i`
 * reads) and the agent's data directory; what the machine needs for its next
 * renewal.
 *
 *   DIR/              mode 0700
 *     identity        the identity file (key, certificate, cluster CA), 0600
 *     ca.crt          the cluster CA the machine pinned at join, 0644
 *     bot.json        facts about the last issue (bot, generation, expiry), 0600
 *                     (agent.json for an agent)
 *     pending.key     a key sent for certification whose answer has not been
 *                     stored yet (0600); reused when that request is retried,
 *                     so a lost answer is recognised by the proxy as a retry
 *
 * Every file is written temp + fsync + rename: a reader sees the old identity
 * or the new one, never a torn file.
 */
import { X509Certificate, createPrivateKey, createPublicKey } from 'node:crypto';
import { chmod, mkdir, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { AccessError } from '../errors.js';
import { formatIdentityFile } from './identity-file.js';
import type { MachineKind } from './names.js';
import { examineIdentity, type ExaminedIdentity } from './load.js';
import { writeFileAtomic } from '../util/atomic-write.js';
import { checkOwnDirectory, readOwnFile } from '../util/safe-path.js';
import type { Logger } from '../util/log.js';

export const DEST_FILES = { identity: 'identity', ca: 'ca.crt', meta: 'bot.json', pendingKey: 'pending.key' } as const;

export type { MachineKind };

/** What the proxy issued, as the directory stores it. */
export interface IssuedCertificate {
  /** The bot's or agent's name. */
  name: string;
  certificate: string;
  cluster: string;
  generation: number;
}

export interface BotMeta {
  /** The bot's name (`agent` instead for an agent's directory). */
  bot?: string;
  agent?: string;
  cluster: string;
  proxy: string;
  generation: number;
  notAfter: string;
  caPin: string;
  updatedAt: string;
}

export class CredentialDir {
  readonly identityPath: string;
  readonly caPath: string;
  readonly metaPath: string;
  readonly pendingKeyPath: string;

  constructor(
    readonly dir: string,
    private readonly log: Logger,
    readonly kind: MachineKind = 'bot',
  ) {
    this.identityPath = join(dir, DEST_FILES.identity);
    this.caPath = join(dir, DEST_FILES.ca);
    this.metaPath = join(dir, kind === 'bot' ? DEST_FILES.meta : `${kind}.json`);
    this.pendingKeyPath = join(dir, DEST_FILES.pendingKey);
  }

  /** Create DIR (0700), or tighten an existing one. */
  async prepare(): Promise<void> {
    try {
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new AccessError(
        'USAGE',
        `cannot create the destination directory ${this.dir} (${(err as NodeJS.ErrnoException).code ?? 'error'})`,
        {
          hint: 'choose a --destination this user can write to',
        },
      );
    }
    // Another user's directory, or one others may write to, is refused: a
    // chmod would not undo what someone may already have planted in it.
    await checkOwnDirectory(this.dir, 'the destination directory');
    const st = await stat(this.dir);
    if ((st.mode & 0o077) !== 0) {
      try {
        await chmod(this.dir, 0o700);
      } catch {
        this.log.warn(`${this.dir} is readable by group or others and cannot be changed to mode 0700`);
      }
    }
  }

  /** The stored identity, examined (also when expired); undefined when there is none. */
  async identity(): Promise<ExaminedIdentity | undefined> {
    try {
      return await examineIdentity(this.identityPath, { warn: (m) => this.log.warn(m) });
    } catch (err) {
      if (err instanceof AccessError && err.code === 'IDENTITY_MISSING') return undefined;
      throw err;
    }
  }

  /** The stored trust anchor; refused (UNSAFE_PATH) when someone else could have put it there. */
  async ca(): Promise<string | undefined> {
    const f = await readOwnFile(this.caPath);
    if (f && 'unsafe' in f) {
      throw new AccessError('UNSAFE_PATH', `${f.unsafe}, so the ${this.kind} does not trust the CA in it`, {
        hint: `remove ${this.caPath} and run ${this.kind} start with --ca-pin (from \`mcp-access ${this.kind} add\`)`,
      });
    }
    return f?.text;
  }

  /** Facts of the last issue (bot.json), when present and sound. */
  async meta(): Promise<BotMeta | undefined> {
    const f = await readOwnFile(this.metaPath, { secret: true });
    if (!f || 'unsafe' in f) return undefined;
    try {
      const m = JSON.parse(f.text) as BotMeta;
      return typeof m?.caPin === 'string' ? m : undefined;
    } catch {
      return undefined;
    }
  }

  async saveCa(pem: string): Promise<void> {
    await writeFileAtomic(this.caPath, pem, 0o644);
  }

  /**
   * The key to certify next: a pending one (its request may have reached the
   * proxy) unless it is already the key of the stored identity.
   */
  async pendingKey(currentKeyPem?: string): Promise<string | undefined> {
    const f = await readOwnFile(this.pendingKeyPath, { secret: true });
    if (!f) return undefined;
    if ('unsafe' in f) {
      // Never certify a key someone else may know: drop it and make a new one.
      this.log.warn(`${f.unsafe}; not using it (a new key is made)`);
      await unlink(this.pendingKeyPath).catch(() => {});
      return undefined;
    }
    const pem = f.text;
    try {
      const pub = spki(pem);
      if (currentKeyPem && pub.equals(spki(currentKeyPem))) {
        await unlink(this.pendingKeyPath).catch(() => {});
        return undefined;
      }
      return pem;
    } catch {
      this.log.warn(`${this.pendingKeyPath} is not a private key; making a new one`);
      await unlink(this.pendingKeyPath).catch(() => {});
      return undefined;
    }
  }

  async savePendingKey(pem: string): Promise<void> {
    await writeFileAtomic(this.pendingKeyPath, pem, 0o600);
  }

  /**
   * Check what the proxy issued against our key and the pinned CA, then store
   * it: identity first (what readers use), then the facts, then drop the
   * pending key.
   */
  async store(
    keyPem: string,
    caPem: string,
    res: IssuedCertificate,
    meta: Omit<BotMeta, 'bot' | 'agent' | 'generation' | 'notAfter' | 'updatedAt' | 'cluster'>,
  ): Promise<string> {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(res.certificate);
    } catch {
      throw new AccessError('PROXY_PROTOCOL', 'the proxy answered with a certificate that cannot be parsed');
    }
    const ca = new X509Certificate(caPem);
    if (!cert.checkPrivateKey(createPrivateKey(keyPem)))
      throw new AccessError('PROXY_PROTOCOL', `the proxy certified a different key than the one the ${this.kind} sent`);
    if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
      throw new AccessError(
        'PROXY_PROTOCOL',
        'the certificate the proxy issued is not signed by the pinned cluster CA',
      );
    const text = formatIdentityFile({ keyPem, certPem: res.certificate, authorityLines: [], caPems: [caPem] });
    await writeFileAtomic(this.identityPath, text, 0o600);
    const facts: BotMeta = {
      [this.kind]: res.name,
      cluster: res.cluster,
      proxy: meta.proxy,
      generation: res.generation,
      notAfter: new Date(cert.validTo).toISOString(),
      caPin: meta.caPin,
      updatedAt: new Date().toISOString(),
    };
    await writeFileAtomic(this.metaPath, `${JSON.stringify(facts, null, 2)}\n`, 0o600);
    await unlink(this.pendingKeyPath).catch(() => {});
    return text;
  }

  /** Write an identity file (another service's destination): temp + fsync + rename, 0600. */
  async writeIdentity(text: string): Promise<void> {
    await writeFileAtomic(this.identityPath, text, 0o600);
  }
}

function spki(pem: string): Buffer {
  return createPublicKey(pem).export({ type: 'spki', format: 'der' });
}
