// Throwaway TLS material for the protocol servers the tests start (FTPS, SMTP/IMAP over TLS): one
// CA of its own signing one server certificate for `localhost` and `127.0.0.1`, made in JavaScript
// (keys by node:crypto, certificates by node-forge), so that no `openssl` command is needed: under
// Wine a Windows node.exe cannot start a Linux binary. Clients trust it through `tls.ca`, never by
// switching checks off.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import forge from 'node-forge';

export interface TestTls {
  /** PEM of the CA that signed the server certificate: what a client puts in `tls.ca`. */
  caPem: string;
  /** PEM of the server certificate (leaf only). */
  certPem: string;
  /** PEM of the server's private key (unencrypted). */
  keyPem: string;
  /** The temp dir holding the same material as files (ca.pem, server.pem, server.key). */
  dir: string;
  /** Removes the temp dir. Never throws. */
  cleanup(): Promise<void>;
}

export interface TestTlsOptions {
  /** Subject alternative names: host names, and IP addresses (v4 or v6). Default localhost + 127.0.0.1. */
  names?: string[];
  /** Common name of the CA, to tell several test CAs apart in messages. */
  caName?: string;
  /** Validity in days. Default 2. */
  days?: number;
}

interface KeyPair {
  pem: string;
  privateKey: forge.pki.rsa.PrivateKey;
  publicKey: forge.pki.rsa.PublicKey;
}

/** RSA 2048 from node:crypto (native, fast), handed to node-forge for signing. */
function rsaKey(): KeyPair {
  const { privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
    publicKeyEncoding: { type: 'spki', format: 'pem' },
  });
  const key = forge.pki.privateKeyFromPem(privateKey) as forge.pki.rsa.PrivateKey;
  return { pem: privateKey, privateKey: key, publicKey: forge.pki.setRsaPublicKey(key.n, key.e) };
}

function certificate(opts: {
  subject: string;
  issuer: string;
  publicKey: forge.pki.rsa.PublicKey;
  signer: forge.pki.rsa.PrivateKey;
  days: number;
  extensions: object[];
}): forge.pki.Certificate {
  const cert = forge.pki.createCertificate();
  cert.publicKey = opts.publicKey;
  cert.serialNumber = '01' + randomBytes(8).toString('hex'); // positive, minimal DER
  cert.validity.notBefore = new Date(Date.now() - 60_000);
  cert.validity.notAfter = new Date(Date.now() + opts.days * 86_400_000);
  cert.setSubject([{ name: 'commonName', value: opts.subject }]);
  cert.setIssuer([{ name: 'commonName', value: opts.issuer }]);
  cert.setExtensions(opts.extensions);
  cert.sign(opts.signer, forge.md.sha256.create());
  return cert;
}

/** Makes a CA and a server certificate signed by it. */
export async function makeTestTls(opts: TestTlsOptions = {}): Promise<TestTls> {
  const names = opts.names ?? ['localhost', '127.0.0.1'];
  const days = opts.days ?? 2;
  const caName = opts.caName ?? 'sprelay test CA';
  const ca = rsaKey();
  const server = rsaKey();
  const caCert = certificate({
    subject: caName,
    issuer: caName,
    publicKey: ca.publicKey,
    signer: ca.privateKey,
    days,
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
      { name: 'subjectKeyIdentifier' },
    ],
  });
  const leaf = certificate({
    subject: names[0] ?? 'localhost',
    issuer: caName,
    publicKey: server.publicKey,
    signer: ca.privateKey,
    days,
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        // GeneralName types: 2 dNSName, 7 iPAddress
        altNames: names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })),
      },
      { name: 'subjectKeyIdentifier' },
      { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
    ],
  });
  const caPem = forge.pki.certificateToPem(caCert);
  const certPem = forge.pki.certificateToPem(leaf);
  const keyPem = server.pem;

  const dir = await mkdtemp(join(tmpdir(), 'sprelay-tls-'));
  const cleanup = () => rm(dir, { recursive: true, force: true }).catch(() => undefined);
  try {
    await writeFile(join(dir, 'ca.pem'), caPem);
    await writeFile(join(dir, 'server.pem'), certPem);
    await writeFile(join(dir, 'server.key'), keyPem, { mode: 0o600 });
  } catch (err) {
    await cleanup();
    throw err;
  }
  return { caPem, certPem, keyPem, dir, cleanup };
}
