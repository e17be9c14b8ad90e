/** The characters of an id, for ID_PATTERN and for patterns of things that contain an id. */
export const ID_CHARACTERS = 'A-Za-z0-9_.:@|-';

/**
 * What an id (of a user, project, role, resource or notification target) may be: ids become parts
 * of Redis keys and hash tags, so they are limited to characters that cannot break them (no
 * braces, no spaces). `|` is allowed for identity providers' subjects such as Auth0's `auth0|…`.
 */
export const ID_PATTERN = new RegExp(`^[${ID_CHARACTERS}]{1,128}$`);

/** ID_PATTERN in words, for error messages. */
export const ID_RULE = '1 to 128 letters, digits or _ . : @ | -';
