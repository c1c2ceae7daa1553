import type pg from 'pg';

/** What node-postgres's connection offers a COPY FROM STDIN (pg/lib/connection.js; not in @types/pg). */
interface CopyConnection {
  query(text: string): void;
  sendCopyFromChunk(chunk: Buffer): void;
  endCopyFrom(): void;
}

/**
 * `COPY … FROM STDIN` of data already in memory, as a node-postgres Submittable: when its
 * turn on the connection comes, the client hands it the connection and then the server's
 * answers (CopyInResponse, CommandComplete, ErrorResponse, ReadyForQuery); `done` settles
 * with the rows copied, or the server's error (its SQLSTATE in `code`). After an error the
 * client goes on with the next query (the ROLLBACK).
 *
 * Not pg-copy-streams' writable stream: when the server refuses a row in the middle of a
 * copy, that stream drops its connection and then writes to it from a socket event, an
 * exception no caller can catch (brianc/node-pg-copy-streams#171, #153); a refused row is an
 * ordinary event for a sink, whose changes then go one by one.
 */
export class CopyIn implements pg.Submittable {
  readonly done: Promise<number>;
  private rowCount = 0;
  private resolve!: (rows: number) => void;
  private reject!: (err: Error) => void;

  constructor(
    readonly text: string,
    /** The data in COPY's format, sent as one CopyData message each. */
    private readonly chunks: Buffer[],
  ) {
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
  }

  submit(connection: pg.Connection): void {
    (connection as unknown as CopyConnection).query(this.text);
  }

  handleCopyInResponse(connection: pg.Connection): void {
    const copy = connection as unknown as CopyConnection;
    for (const chunk of this.chunks) copy.sendCopyFromChunk(chunk);
    copy.endCopyFrom();
  }

  handleCommandComplete(msg: { text?: string }): void {
    const m = /^COPY (\d+)/.exec(msg.text ?? '');
    if (m) this.rowCount = Number(m[1]);
  }

  handleError(err: Error): void {
    this.reject(err);
  }

  handleReadyForQuery(): void {
    this.resolve(this.rowCount);
  }
}
