import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const lsCommand: CommandModule = {
  command: 'ls',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`ls` is not implemented yet');
  },
};
