package faultproxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tamperguard/tamperguard/internal/faultproxy"
)

// BenchmarkForward measures what the proxy adds to a small GET, against the same
// request sent straight to the upstream, with requests in parallel; it reports the most
// requests the proxy had in flight at once.
func BenchmarkForward(b *testing.B) {
	body := pattern(4 << 10)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))
	b.Cleanup(up.Close)
	run := func(b *testing.B, url string) {
		tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
		b.Cleanup(tr.CloseIdleConnections)
		c := &http.Client{Transport: tr}
		b.SetBytes(int64(len(body)))
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				resp, err := c.Get(url)
				if err != nil {
					b.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	b.Run("direct", func(b *testing.B) { run(b, up.URL+"/x") })
	b.Run("proxied", func(b *testing.B) {
		p := faultproxy.New(b, up.URL, faultproxy.WithLogLimit(0))
		p.Add(faultproxy.Rule{Path: "/never", When: faultproxy.Always(), Fault: faultproxy.Reset()})
		run(b, p.URL()+"/x")
		b.ReportMetric(float64(p.Stats().MaxInFlight), "max-in-flight")
	})
}
