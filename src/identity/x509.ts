/**
 * @peculiar/x509, ready to use with node's WebCrypto. Import it from here,
 * never directly: the reflect shim must run first and the crypto provider must
 * be set. Heavy (~1 MB of JS); keep it off `connect`'s start-up path, which
 * uses node:crypto only (see claims.ts and load.ts).
 */
import './reflect-shim.js';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

// node's webcrypto is the standard Crypto; the cast only bridges the two type declarations.
x509.cryptoProvider.set(webcrypto as never);

export { x509, webcrypto };
