import { InvalidTokenError, type Viewer } from '../auth/token.js';
import { clientError, ErrorCode } from '../errors.js';
import { builder } from './builder.js';
import { assertAdmin, validId } from './guards.js';
import { ViewerRef } from './viewer.js';

builder.mutationField('refreshToken', (t) =>
  t.field({
    type: ViewerRef,
    description:
      'Hands over a fresh access token (the JWT itself, without `Bearer`) for the same user. Only matters on a ' +
      'WebSocket: sent over one, it re-authenticates that connection in place. Operations started from then on ' +
      'run as the new token says, the connection is closed with 4401 when the new token expires (not the old ' +
      'one), and running subscriptions go on untouched. Over HTTP and SSE, where every request carries its own ' +
      'token, it only checks the token. A token that does not verify (bad, expired, revoked) is UNAUTHENTICATED ' +
      'and changes nothing (the WebSocket stays open on its old token); a token of another user is FORBIDDEN. ' +
      'Not counted by the mutation rate limit. Returns who the new token says is calling.',
    args: { token: t.arg.string({ required: true }) },
    resolve: async (_root, { token }, context) => {
      let viewer: Viewer;
      try {
        viewer = await context.services.verifyToken(token);
      } catch (error) {
        if (!(error instanceof InvalidTokenError)) throw error;
        throw clientError(ErrorCode.Unauthenticated, error.message, { argument: 'token' });
      }
      if (viewer.id !== context.viewer.id) {
        throw clientError(ErrorCode.Forbidden, 'the token is for another user: open a new connection with it', {
          argument: 'token',
        });
      }
      context.connection?.reauthenticate(viewer);
      return viewer;
    },
  }),
);

builder.mutationField('revokeUser', (t) =>
  t.int({
    description:
      "Admins only. Revokes the user's access on every API instance at once: each of their WebSocket connections " +
      'is closed with 4403 and each of their SSE subscriptions ends with an UNAUTHENTICATED result, and every token of theirs issued until now (`iat` up to this second, or no `iat`) is ' +
      'refused from then on, as UNAUTHENTICATED (HTTP 401, WebSocket 4401). Tokens issued after it work: the user ' +
      'signs in again. The revocation is kept for REVOCATION_TTL_SECONDS (default 7 days), which should outlast ' +
      'the longest token lifetime. Returns how many connections (WebSockets and SSE subscriptions) were closed on ' +
      'the instance that answered; those on other instances close at the same moment.',
    args: { userId: t.arg.id({ required: true }) },
    resolve: (_root, { userId }, context) => {
      assertAdmin(context, 'revoke users');
      return context.services.revocations.revoke(validId(String(userId), 'userId'));
    },
  }),
);
