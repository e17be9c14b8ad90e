import {
  MarkNotificationsReadDocument,
  NotificationInboxDocument,
  NotificationSummaryDocument,
  type HeraldClient,
  type NotificationItem,
  type NotificationSummaryQuery,
} from '../client/index.js';
import { find, fromTemplate } from './dom.js';

/** Notifications fetched per inbox page. */
const PAGE_SIZE = 20;
/** How long the toast for a new notification stays. */
const TOAST_MS = 6_000;

export interface NotificationsView {
  /**
   * Shows the summary of what arrived while the viewer was away and the inbox, then follows the
   * `notifications` stream from the newest notification shown, until the client is disposed.
   */
  watch(herald: HeraldClient): Promise<void>;
  /** Empties the bell and the inbox, for the next sign-in. */
  reset(): void;
}

type UnreadByLevel = NotificationSummaryQuery['notificationSummary']['unreadByLevel'];

/**
 * The banner: on sign-in, what arrived while the viewer was away, level by level; once the count
 * changes those levels are stale, so from then on it says the count the bell shows.
 */
function describeUnread(unread: number, byLevel: UnreadByLevel | null): string {
  if (unread === 0) return 'No unread notifications.';
  if (!byLevel) return `${unread} unread notification${unread === 1 ? '' : 's'}.`;
  const levels = byLevel.filter((entry) => entry.count > 0).map((entry) => `${entry.count} ${entry.level.toLowerCase()}`);
  return `While you were away: ${unread} unread (${levels.join(', ')}).`;
}

const timeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'short' });

function itemFor(notification: NotificationItem): HTMLElement {
  const item = fromTemplate('inbox-item');
  item.dataset.id = notification.id;
  item.dataset.level = notification.level;
  item.dataset.read = String(notification.read);
  find('.level', HTMLElement, item).textContent = notification.level;
  find('.title', HTMLElement, item).textContent = notification.title;
  const time = find('time', HTMLTimeElement, item);
  time.dateTime = notification.createdAt;
  time.textContent = timeFormat.format(new Date(notification.createdAt));
  const body = find('.body', HTMLElement, item);
  body.textContent = notification.body ?? '';
  body.hidden = !notification.body;
  find('.mark-read', HTMLButtonElement, item).setAttribute('aria-label', `Mark “${notification.title}” read`);
  return item;
}

/**
 * The bell (unread count), the banner, the inbox panel and the toast for live notifications. Read
 * state comes from the stream (READ, READ_ALL, DELETED and ARCHIVED items carry the new count), so every tab of the
 * viewer agrees; the bell and the banner show one count, set in one place.
 */
export function setUpNotifications(client: () => HeraldClient, report: (error: unknown) => void): NotificationsView {
  const bell = find('#bell', HTMLButtonElement);
  const badge = find('#unread-count', HTMLElement);
  const inbox = find('#inbox', HTMLElement);
  const list = find('#inbox-list', HTMLOListElement);
  const empty = find('#inbox-empty', HTMLElement);
  const older = find('#inbox-older', HTMLButtonElement);
  const summary = find('#summary', HTMLElement);
  const toast = find('#toast', HTMLElement);
  let unread = 0;
  /** Counts resets: a stream still draining items of the previous sign-in stops applying them. */
  let session = 0;
  let oldestCursor: string | null = null;
  let toastTimer: ReturnType<typeof setTimeout> | undefined;

  /** The one place the unread count changes: the bell and the banner always show the same number. */
  const setUnread = (count: number, byLevel: UnreadByLevel | null = null) => {
    unread = count;
    badge.textContent = String(count);
    badge.dataset.count = String(count);
    summary.textContent = describeUnread(count, byLevel);
  };
  const itemById = (id: string) =>
    [...list.children].find((item): item is HTMLElement => item instanceof HTMLElement && item.dataset.id === id);
  const append = (notifications: NotificationItem[], page: { hasNextPage: boolean; endCursor: string | null }) => {
    list.append(...notifications.map(itemFor));
    oldestCursor = page.endCursor;
    older.hidden = !page.hasNextPage;
    empty.hidden = list.children.length > 0;
  };
  const openInbox = (open: boolean) => {
    inbox.hidden = !open;
    bell.setAttribute('aria-expanded', String(open));
  };

  bell.addEventListener('click', () => openInbox(inbox.hidden));
  inbox.addEventListener('keydown', (event) => {
    if (event.key !== 'Escape') return;
    openInbox(false);
    bell.focus();
  });
  find('#mark-all', HTMLButtonElement).addEventListener('click', () => {
    client().mutate(MarkNotificationsReadDocument, { all: true }).catch(report);
  });
  list.addEventListener('click', (event) => {
    const item = event.target instanceof Element ? event.target.closest('.mark-read')?.closest('li') : null;
    if (item?.dataset.id)
      client()
        .mutate(MarkNotificationsReadDocument, { ids: [item.dataset.id] })
        .catch(report);
  });
  older.addEventListener('click', () => {
    client()
      .query(NotificationInboxDocument, { first: PAGE_SIZE, after: oldestCursor })
      .then(
        ({ notificationInbox }) =>
          append(
            notificationInbox.edges.map((edge) => edge.node),
            notificationInbox.pageInfo,
          ),
        report,
      );
  });

  function announce(notification: NotificationItem) {
    toast.textContent = `${notification.level.toLowerCase()}: ${notification.title}`;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => (toast.textContent = ''), TOAST_MS);
  }

  async function apply(herald: HeraldClient, notification: NotificationItem) {
    switch (notification.event) {
      case 'CREATED':
        if (itemById(notification.id)) return;
        list.prepend(itemFor(notification));
        empty.hidden = true;
        if (!notification.read) setUnread(unread + 1);
        announce(notification);
        return;
      case 'READ': {
        const item = itemById(notification.id);
        if (item) item.dataset.read = 'true';
        setUnread(notification.unreadCount ?? unread);
        return;
      }
      case 'READ_ALL': {
        // Everything up to this notification: it and every older one below it.
        const items = [...list.children].filter((item): item is HTMLElement => item instanceof HTMLElement);
        const newest = items.findIndex((item) => item.dataset.id === notification.id);
        for (const item of items.slice(Math.max(newest, 0))) item.dataset.read = 'true';
        setUnread(notification.unreadCount ?? 0);
        return;
      }
      case 'DELETED':
      case 'ARCHIVED':
        itemById(notification.id)?.remove();
        empty.hidden = list.children.length > 0;
        setUnread(notification.unreadCount ?? unread);
        return;
      case 'HISTORY_GAP':
        // Some notifications are gone from the stream: the server's count is the truth.
        setUnread((await herald.query(NotificationSummaryDocument)).notificationSummary.unread);
        return;
    }
  }

  return {
    async watch(herald) {
      const watching = session;
      const [{ notificationSummary }, { notificationInbox }] = await Promise.all([
        herald.query(NotificationSummaryDocument),
        herald.query(NotificationInboxDocument, { first: PAGE_SIZE }),
      ]);
      if (session !== watching) return;
      setUnread(notificationSummary.unread, notificationSummary.unreadByLevel);
      summary.hidden = false;
      append(
        notificationInbox.edges.map((edge) => edge.node),
        notificationInbox.pageInfo,
      );
      bell.disabled = false;
      for await (const notification of herald.notifications(notificationInbox.edges[0]?.cursor)) {
        if (session !== watching) break;
        await apply(herald, notification);
      }
    },
    reset() {
      session += 1;
      openInbox(false);
      bell.disabled = true;
      list.replaceChildren();
      empty.hidden = false;
      older.hidden = true;
      setUnread(0);
      summary.hidden = true;
      toast.textContent = '';
    },
  };
}
