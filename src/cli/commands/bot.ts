import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const botCommand: CommandModule = {
  command: 'bot',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`bot` is not implemented yet');
  },
};
