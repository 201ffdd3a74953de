/**
 * @peculiar/x509, ready to use with node's WebCrypto. Import it from here,
 * never directly: the reflect shim must run first and the crypto provider must
 * be set. Heavy (~1 MB of JS); keep it off `connect`'s start-up path, which
 * uses node:crypto only (see claims.ts and load.ts).
 */
import './reflect-shim.js';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

export { x509, webcrypto };
