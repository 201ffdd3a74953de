/** `mcp-access ca init`: create the cluster CA and the proxy's certificate. */
import type { CommandModule } from 'yargs';
import { defineCommand } from './define.js';

interface InitArgs {
  dir: string;
  cluster: string;
  'proxy-host'?: string[];
  force?: boolean;
  format: 'text' | 'json';
}

const initCommand = defineCommand<InitArgs>({
  command: 'init',
  describe: 'Create a cluster certificate authority and the proxy server certificate',
  builder: (y) =>
    y
      .option('dir', { type: 'string', demandOption: true, describe: 'Directory for the CA (created, mode 0700)' })
      .option('cluster', { type: 'string', demandOption: true, describe: 'Cluster name (the CA certificate CN)' })
      .option('proxy-host', {
        type: 'string',
        array: true,
        describe: 'A name or IP the proxy is reached at; repeat for each (default: localhost and 127.0.0.1)',
      })
      .option('force', {
        type: 'boolean',
        default: false,
        describe: 'Replace an existing CA (every identity it issued stops working)',
      })
      .option('format', { choices: ['text', 'json'] as const, default: 'text' as const, describe: 'Output format' })
      .example('$0 ca init --dir ./ca --cluster demo', 'CA for a proxy on this machine')
      .example(
        '$0 ca init --dir /etc/mcp-access/ca --cluster prod --proxy-host mcp.example.com --proxy-host 10.0.0.5',
        'CA for a proxy reached by name and IP',
      ),
  handler: async (argv) => {
    const { initCa, caPin } = await import('../../identity/ca.js');
    const { print, printJson } = await import('../output.js');
    const hosts = (argv['proxy-host'] ?? []).flatMap((h) => String(h).split(','));
    const ca = await initCa({ dir: argv.dir, cluster: argv.cluster, proxyHosts: hosts, force: argv.force });
    const { X509Certificate } = await import('node:crypto');
    const proxyHosts = (new X509Certificate(ca.proxyCertPem).subjectAltName ?? '')
      .split(', ')
      .map((s) => s.replace(/^(DNS|IP Address):/, ''));
    const pin = caPin(ca.caCertPem);
    if (argv.format === 'json') {
      printJson({
        cluster: ca.cluster,
        dir: ca.dir,
        caCert: ca.caCertPath,
        caKey: ca.caKeyPath,
        proxyCert: ca.proxyCertPath,
        proxyKey: ca.proxyKeyPath,
        proxyHosts,
        caPin: pin,
      });
      return;
    }
    print(
      [
        `Created the certificate authority for cluster "${ca.cluster}" in ${ca.dir}`,
        `  CA certificate:     ${ca.caCertPath}`,
        `  CA private key:     ${ca.caKeyPath}  (mode 0600: keep it secret)`,
        `  proxy certificate:  ${ca.proxyCertPath}  (hosts: ${proxyHosts.join(', ')})`,
        `  proxy private key:  ${ca.proxyKeyPath}  (mode 0600)`,
        `  CA pin:             ${pin}`,
        '',
        `Next: mcp-access identity issue --ca-dir ${ca.dir} --user NAME --roles ROLE --out FILE`,
      ].join('\n'),
    );
  },
});

export const caCommand: CommandModule = {
  command: 'ca',
  describe: 'Manage the cluster certificate authority',
  builder: (y) =>
    y
      .command(initCommand)
      .demandCommand(1, 'name a ca command: init')
      .example('$0 ca init --dir ./ca --cluster demo', 'Create a CA and proxy certificate in ./ca'),
  handler: () => {},
};
