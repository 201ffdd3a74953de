import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const proxyCommand: CommandModule = {
  command: 'proxy',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`proxy` is not implemented yet');
  },
};
