import { stringify } from 'yaml';
import { defaultConfig } from '../../config/load-config.js';
import { CONFIG_OPTION, type Command } from '../command.js';
import { configOf } from '../common.js';

export const configCommand: Command = {
  name: 'config',
  summary: 'Validate the configuration and print the effective values (file + environment + defaults) as YAML.',
  options: {
    ...CONFIG_OPTION,
    defaults: { type: 'boolean', description: 'print the defaults only, ignoring file and environment' },
  },
  async run(ctx) {
    const config = ctx.values.defaults === true ? defaultConfig() : configOf(ctx);
    ctx.out(stringify(config).trimEnd());
    return 0;
  },
};
