package browser

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/chromedp/chromedp"
)

// drawnScript reads the page's performance mark numbers-drawn, which the
// dashboard records once the usage summary and the daily chart are first
// drawn: its startTime counts from the navigation's start. It returns null
// while the mark is missing, and the shown message when the page ends in
// its error state instead.
const drawnScript = `(() => {
	const m = performance.getEntriesByName('numbers-drawn')[0];
	if (m) return {ms: m.startTime};
	if (document.body && document.body.dataset.state === 'error') {
		const e = document.querySelector('[data-testid=error-message]');
		return {error: e ? e.textContent : 'the page shows an error'};
	}
	return null;
})()`

// NumbersDrawn loads url in a new tab with an empty cache and returns the
// time from the start of the navigation to the numbers drawn, as the
// page's own performance timing measures it. It waits until ctx is done.
func (b *Browser) NumbersDrawn(ctx context.Context, url string) (time.Duration, error) {
	tab, closeTab := b.Tab(ctx, true)
	defer closeTab()
	if err := chromedp.Do(tab, chromedp.Navigate(url)); err != nil {
		return 0, fmt.Errorf("load %s: %w", url, err)
	}
	r, err := chromedp.Run(tab, chromedp.Poll[struct {
		MS    float64 `json:"ms"`
		Error string  `json:"error"`
	}](drawnScript, chromedp.WithPollingTimeout(0)))
	switch {
	case err != nil:
		return 0, fmt.Errorf("wait for the numbers: %w", err)
	case r.Error != "":
		return 0, errors.New("the page shows an error: " + r.Error)
	}
	return time.Duration(r.MS * float64(time.Millisecond)), nil
}

// Median returns the median of ds (the mean of the middle two for an even
// count); 0 for none.
func Median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if n := len(s); n%2 == 0 {
		return (s[n/2-1] + s[n/2]) / 2
	}
	return s[len(s)/2]
}
