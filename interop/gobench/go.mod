module memberlist-rs/interop/gobench

go 1.25

require github.com/hashicorp/go-msgpack/v2 v2.1.5
