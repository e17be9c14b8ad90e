import { builder } from './builder.js';
import './scalars.js';
import './viewer.js';
import './progress.js';
import './jobs.js';
import './notifications.js';
import './presence.js';
import './session.js';
import './service-keys.js';

/** The whole schema, built once per process from the domain files above. */
export const schema = builder.toSchema({ sortSchema: false });
