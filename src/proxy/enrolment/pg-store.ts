/**
 * Bot and agent records in the backend's records (PostgreSQL with `backend:
 * { type: postgres }`): the same records as the state directory's files, one
 * row per bot or agent; `locked` is one transaction under an advisory lock,
 * so the CLI and every proxy replica change records one at a time.
 */
import { AccessError } from '../../errors.js';
import { isValidName, type MachineKind } from '../../identity/names.js';
import { KINDS, type Backend, type RecordStore } from '../../backend/types.js';
import { BotStore, checkRecord, type BotRecord, type EnrolmentStore } from './store.js';

export class BackendBotStore implements EnrolmentStore {
  readonly dir: string;

  constructor(
    private readonly records: RecordStore<BotRecord>,
    readonly kind: MachineKind = 'bot',
  ) {
    this.dir = records.where;
  }

  async ensure(): Promise<void> {}

  locked<T>(fn: () => Promise<T>): Promise<T> {
    return this.records.locked(fn);
  }

  private check(name: string): void {
    if (!isValidName(this.kind, name))
      throw new AccessError('USAGE', `${this.kind} name ${JSON.stringify(name)} is not allowed`);
  }

  read(name: string): Promise<BotRecord | undefined> {
    this.check(name);
    return this.records.read(name);
  }

  readAll(): Promise<BotRecord[]> {
    return this.records.readAll();
  }

  write(record: BotRecord): Promise<void> {
    this.check(record.name);
    return this.records.write(record.name, record);
  }

  names(): Promise<string[]> {
    return this.records.names();
  }

  stamp(name: string): Promise<string | undefined> {
    return this.records.stamp(name);
  }
}

/** The bot (or agent) records of a proxy: in the backend with type postgres, else in bot.state_dir. */
export function openEnrolmentStore(stateDir: string, backend?: Backend, kind: MachineKind = 'bot'): EnrolmentStore {
  if (backend?.type === 'postgres') {
    const recordKind = kind === 'agent' ? KINDS.agentEnrolment : KINDS.bot;
    return new BackendBotStore(
      backend.records(recordKind, (value, where) => checkRecord(value, where, kind)),
      kind,
    );
  }
  return new BotStore(stateDir, kind);
}
