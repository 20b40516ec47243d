/** The output tail: a byte ring buffer keeping the last N bytes, decoded UTF-8-safe at the cut. */
import { describe, expect, it } from 'vitest';
import { OutputTail } from '../../src/agent/output-tail.js';

describe('OutputTail', () => {
  it('keeps everything below its capacity', () => {
    const tail = new OutputTail(16);
    tail.write(Buffer.from('hello '));
    tail.write(Buffer.from('world'));
    expect(tail.text()).toBe('hello world');
    expect(tail.totalBytes).toBe(11);
    expect(tail.droppedBytes).toBe(0);
  });

  it('keeps the last N bytes across many writes and wraps', () => {
    const tail = new OutputTail(8);
    for (const part of ['abc', 'defg', 'hij', 'klmnop', 'q']) tail.write(Buffer.from(part));
    expect(tail.text()).toBe('jklmnopq');
    expect(tail.totalBytes).toBe(17);
    expect(tail.droppedBytes).toBe(9);
  });

  it('keeps the end of a chunk larger than the capacity', () => {
    const tail = new OutputTail(4);
    tail.write(Buffer.from('xy'));
    tail.write(Buffer.from('0123456789'));
    expect(tail.text()).toBe('6789');
  });

  it('never starts with half a character', () => {
    // "é" is 2 bytes, "€" 3, "😀" 4: whatever the cut, the text starts at a whole character.
    const text = 'aé€😀'.repeat(50);
    for (let capacity = 4; capacity < 40; capacity++) {
      const tail = new OutputTail(capacity);
      tail.write(Buffer.from(text));
      const kept = tail.text();
      expect(kept).not.toContain('\uFFFD');
      expect(text.endsWith(kept)).toBe(true);
      expect(Buffer.byteLength(kept)).toBeGreaterThan(capacity - 4);
    }
  });

  it('matches the last bytes of a random stream', () => {
    const tail = new OutputTail(1000);
    const all: Buffer[] = [];
    for (let i = 0; i < 200; i++) {
      const chunk = Buffer.from(Array.from({ length: (i * 37) % 97 }, (_, j) => 97 + ((i + j) % 26)));
      all.push(chunk);
      tail.write(chunk);
    }
    const whole = Buffer.concat(all);
    expect(tail.bytes().equals(whole.subarray(whole.length - 1000))).toBe(true);
  });
});
