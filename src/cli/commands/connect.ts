import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const connectCommand: CommandModule = {
  command: 'connect',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`connect` is not implemented yet');
  },
};
