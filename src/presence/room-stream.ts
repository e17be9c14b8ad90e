import type { EventStream } from '../updates/event-stream.js';
import type { UpdateHub } from '../updates/hub.js';
import { LiveStream, type LiveStreamLimits } from '../updates/live-stream.js';
import { byArrival, isRoomChange, type Room, type RoomPresence, type Watcher } from './rooms.js';

/** What a presence subscriber is sent: who is there when it starts, then each join and leave. */
export interface PresenceEvent {
  change: 'PRESENT' | 'JOINED' | 'LEFT';
  /** Who joined or left; null on PRESENT. */
  user: Watcher | null;
  /** When it happened (Redis' clock), or when the subscriber learned it after missing the message. */
  at: number;
  /** Everyone in the room after this change, oldest first. */
  watchers: Watcher[];
}

/**
 * A room's joins and leaves, lossless like the update streams: subscribe to the room's channel,
 * read who is there and send it (PRESENT), then apply each change whose number follows the last
 * one. A change that skips a number, a repeated one, or a Redis reconnect makes the stream read the
 * room again and send the difference as joins and leaves, so its list always ends up as Redis has it.
 */
class RoomStream extends LiveStream<unknown, PresenceEvent> {
  private readonly present = new Map<string, Watcher>();
  private version = 0;

  constructor(
    hub: UpdateHub,
    limits: LiveStreamLimits,
    private readonly rooms: RoomPresence,
    private readonly room: Room,
  ) {
    super(hub, limits);
  }

  protected async open(): Promise<void> {
    const snapshot = await this.rooms.snapshot(this.room);
    this.version = snapshot.version;
    for (const watcher of snapshot.watchers) this.present.set(watcher.id, watcher);
    this.emit({ change: 'PRESENT', user: null, at: Date.now(), watchers: snapshot.watchers });
  }

  protected async resync(): Promise<void> {
    const snapshot = await this.rooms.snapshot(this.room);
    if (this.isEnded) return;
    this.version = snapshot.version;
    const now = Date.now();
    const current = new Map(snapshot.watchers.map((watcher) => [watcher.id, watcher]));
    for (const [id, watcher] of this.present) {
      if (current.get(id)?.since !== watcher.since) this.apply('LEFT', watcher, now);
    }
    for (const watcher of snapshot.watchers) {
      if (!this.present.has(watcher.id)) this.apply('JOINED', watcher, watcher.since);
    }
  }

  protected receive(message: unknown): Promise<void> | void {
    if (!isRoomChange(message)) return;
    if (message.version !== this.version + 1) return this.resync();
    this.version = message.version;
    this.apply(message.change, { id: message.userId, since: message.since }, message.at);
  }

  private apply(change: 'JOINED' | 'LEFT', user: Watcher, at: number): void {
    if (change === 'JOINED') this.present.set(user.id, user);
    else this.present.delete(user.id);
    this.emit({ change, user, at, watchers: [...this.present.values()].sort(byArrival) });
  }
}

/** Opens a room's presence stream; resolves once its channel is subscribed and the first read queued. */
export async function openRoomStream(
  hub: UpdateHub,
  limits: LiveStreamLimits,
  rooms: RoomPresence,
  room: Room,
): Promise<EventStream<PresenceEvent>> {
  const stream = new RoomStream(hub, limits, rooms, room);
  await stream.start([rooms.channel(room)]);
  return stream;
}
