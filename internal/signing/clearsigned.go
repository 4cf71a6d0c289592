package signing

var clearsignedHeader = []byte("-----BEGIN PGP SIGNED MESSAGE-----")
