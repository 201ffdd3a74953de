import type { CommandModule } from 'yargs';
import { AccessError } from '../../errors.js';

export const auditCommand: CommandModule = {
  command: 'audit',
  describe: '(not implemented yet)',
  handler: () => {
    throw new AccessError('USAGE', '`audit` is not implemented yet');
  },
};
