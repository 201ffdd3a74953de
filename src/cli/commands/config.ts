import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const configCommand: CommandModule = {
  command: 'config',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`config` is not implemented yet');
  },
};
