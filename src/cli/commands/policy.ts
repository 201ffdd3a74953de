import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const policyCommand: CommandModule = {
  command: 'policy',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`policy` is not implemented yet');
  },
};
