;; The lab's WASM workload (WASI preview 1): writes one line to stdout and returns.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory 1)
  (export "memory" (memory 0))
  (data (i32.const 16) "edgefleet: hello from a WASM module\n")
  (func (export "_start")
    ;; one iovec at 0: the text at 16, 36 bytes; the count of bytes written goes to 8.
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 36))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
