;; JSON string escaping of UTF-8 bytes, 16 bytes at a time (WebAssembly SIMD).
;;
;; The recording writer (asciicast-writer.ts) copies up to 64 KiB of valid UTF-8 to SRC and
;; calls `escape(n)`; the escaped bytes (the inside of a JSON string, as JSON.stringify
;; writes it) are at DST up to the returned offset. Bytes below 0x20, '"' and '\' are
;; escaped; every other byte, multi-byte sequences included, is copied as it is.
;;
;; ESCAPES holds 8 bytes per byte value: the escape text in bytes 0-5 and its length in
;; byte 7 (0: no escape). The writer fills it in when it loads the module.
;;
;; Compiled by scripts/build-wasm.js into json-escape-wasm.ts (a unit test checks the two
;; agree). Layout: SRC 0..64 KiB, DST 64 KiB..448 KiB (6 bytes per byte, 8 bytes of slack),
;; ESCAPES at 456 KiB (2 KiB).
(module
  (memory (export "memory") 8)

  ;; Writes the byte at $i to $o, escaped if ESCAPES has an escape for it; answers the end.
  (func $escape_byte (param $i i32) (param $o i32) (result i32)
    (local $entry i32)
    (local $length i32)
    (local.set $entry (i32.shl (i32.load8_u (local.get $i)) (i32.const 3)))
    (local.set $length (i32.load8_u offset=466951 (local.get $entry)))
    (if (result i32) (local.get $length)
      (then
        (i64.store (local.get $o) (i64.load offset=466944 (local.get $entry)))
        (i32.add (local.get $o) (local.get $length)))
      (else
        (i32.store8 (local.get $o) (i32.load8_u (local.get $i)))
        (i32.add (local.get $o) (i32.const 1)))))

  (func (export "escape") (param $n i32) (result i32)
    (local $i i32)
    (local $o i32)
    (local $v v128)
    (local $mask i32)
    (local.set $o (i32.const 65536))
    ;; 16 bytes at a time: store them all, then keep those before the first byte to escape.
    (block $wide_done
      (loop $wide
        (br_if $wide_done (i32.gt_u (i32.add (local.get $i) (i32.const 16)) (local.get $n)))
        (local.set $v (v128.load (local.get $i)))
        (v128.store (local.get $o) (local.get $v))
        (local.set $mask
          (i8x16.bitmask
            (v128.or
              (i8x16.lt_u (local.get $v) (i8x16.splat (i32.const 0x20)))
              (v128.or
                (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x22)))
                (i8x16.eq (local.get $v) (i8x16.splat (i32.const 0x5c)))))))
        (if (i32.eqz (local.get $mask))
          (then
            (local.set $i (i32.add (local.get $i) (i32.const 16)))
            (local.set $o (i32.add (local.get $o) (i32.const 16)))
            (br $wide)))
        ;; The first byte to escape, at $i + ctz: its escape overwrites what was stored there.
        (local.set $mask (i32.ctz (local.get $mask)))
        (local.set $i (i32.add (local.get $i) (local.get $mask)))
        (local.set $o (i32.add (local.get $o) (local.get $mask)))
        (local.set $o (call $escape_byte (local.get $i) (local.get $o)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $wide)))
    ;; The last 0-15 bytes, one at a time.
    (block $tail_done
      (loop $tail
        (br_if $tail_done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $o (call $escape_byte (local.get $i) (local.get $o)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $tail)))
    (local.get $o)))
