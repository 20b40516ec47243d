/**
 * The last N bytes of a stream (a command's stdout or stderr), in a fixed ring buffer: memory stays at N
 * whatever the command prints. Decoding cuts at a UTF-8 character boundary, so a multi-byte character
 * split by the window's start never shows as garbage.
 */

/** Bytes kept per stream in a run record. */
export const OUTPUT_TAIL_BYTES = 64 * 1024;

export class OutputTail {
  readonly #buffer: Buffer;
  /** Next write position in the ring. */
  #end = 0;
  /** Bytes seen in total (more than the capacity: the start was dropped). */
  #total = 0;

  constructor(readonly capacity: number = OUTPUT_TAIL_BYTES) {
    if (!Number.isInteger(capacity) || capacity < 4) throw new RangeError(`output tail: capacity must be an integer ≥ 4, got ${capacity}`);
    this.#buffer = Buffer.alloc(capacity);
  }

  /** Bytes written since the start (kept or not). */
  get totalBytes(): number {
    return this.#total;
  }

  /** Bytes dropped from the start. */
  get droppedBytes(): number {
    return Math.max(0, this.#total - this.capacity);
  }

  write(chunk: Uint8Array): void {
    this.#total += chunk.length;
    // Only the chunk's last `capacity` bytes can survive.
    const data = chunk.length > this.capacity ? chunk.subarray(chunk.length - this.capacity) : chunk;
    const first = Math.min(data.length, this.capacity - this.#end);
    this.#buffer.set(data.subarray(0, first), this.#end);
    if (first < data.length) this.#buffer.set(data.subarray(first), 0);
    this.#end = (this.#end + data.length) % this.capacity;
  }

  /** The kept bytes, oldest first. */
  bytes(): Buffer {
    if (this.#total <= this.capacity) return Buffer.from(this.#buffer.subarray(0, this.#total));
    return Buffer.concat([this.#buffer.subarray(this.#end), this.#buffer.subarray(0, this.#end)]);
  }

  /** The kept bytes as UTF-8; when the start was dropped, from the first whole character on. */
  text(): string {
    let bytes = this.bytes();
    if (this.droppedBytes > 0) {
      // Skip continuation bytes (10xxxxxx) of a character whose lead byte was dropped (at most 3).
      let skip = 0;
      while (skip < 3 && skip < bytes.length && ((bytes[skip] as number) & 0xc0) === 0x80) skip++;
      bytes = bytes.subarray(skip);
    }
    return bytes.toString('utf8');
  }
}
