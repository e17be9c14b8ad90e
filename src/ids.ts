/**
 * What an id (of a user, project, role, resource or notification target) may be: ids become parts
 * of Redis keys and hash tags, so they are limited to characters that cannot break them.
 */
export const ID_PATTERN = /^[A-Za-z0-9_.:@-]{1,128}$/;
