/**
 * The one typed way to define a command. yargs infers a type for the options a
 * builder declares, but not one a handler can be written against (choices,
 * arrays and aliases come out wider than what is documented), so the command
 * states its arguments as `A`: the builder declares the options, the handler
 * receives `A`. The one cast between what yargs infers and `A` is here, not in
 * every command.
 */
import type { ArgumentsCamelCase, Argv, CommandModule } from 'yargs';

export interface CommandSpec<A> {
  command: string | readonly string[];
  describe: string;
  /** Declares the options (and positionals, examples, subcommands); what it returns is what yargs parses. */
  builder: (y: Argv) => Argv<object>;
  handler: (argv: ArgumentsCamelCase<A>) => void | Promise<void>;
}

export function defineCommand<A>(spec: CommandSpec<A>): CommandModule {
  return spec as unknown as CommandModule;
}
