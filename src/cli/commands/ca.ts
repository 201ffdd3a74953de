import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const caCommand: CommandModule = {
  command: 'ca',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`ca` is not implemented yet');
  },
};
