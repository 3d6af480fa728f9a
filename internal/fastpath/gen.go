package fastpath

// The BPF object and its Go bindings are generated from fastpath.c and
// committed, so building nat64kit needs no clang; `make generate` runs this
// (and installs clang, llvm and libbpf-dev first).
//
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu" -target bpfel -type key6 -type key4 -type to4 -type to6 -type count fastpath bpf/fastpath.c
