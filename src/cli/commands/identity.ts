import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const identityCommand: CommandModule = {
  command: 'identity',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`identity` is not implemented yet');
  },
};
