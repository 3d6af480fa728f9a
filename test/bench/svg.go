package bench

import (
	"fmt"
	"strings"
)

// panel is one figure across the peers.
type panel struct {
	title  string
	unit   string
	values []float64
}

// barChart draws one horizontal bar chart per panel, peers as rows: a
// plain SVG, so the report needs no plotting tool.
func barChart(peers []string, panels []panel) string {
	const (
		width, rowH, labelW, barW = 760, 22, 230, 420
		panelGap                  = 30
	)
	height := len(panels) * (len(peers)*rowH + panelGap + 20)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", width, height)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	colors := []string{"#9e9e9e", "#e08a3c", "#2f6fb0", "#7fa7d6"}
	y := 20
	for _, p := range panels {
		fmt.Fprintf(&b, `<text x="10" y="%d" font-weight="bold">%s (%s)</text>`+"\n", y, p.title, p.unit)
		y += 8
		top := 0.0
		for _, v := range p.values {
			top = max(top, v)
		}
		for i, name := range peers {
			w := 0.0
			if top > 0 {
				w = p.values[i] / top * barW
			}
			fmt.Fprintf(&b, `<text x="10" y="%d">%s</text>`+"\n", y+15, name)
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>`+"\n", labelW, y+3, w, rowH-6, colors[i%len(colors)])
			fmt.Fprintf(&b, `<text x="%.1f" y="%d">%s</text>`+"\n", float64(labelW)+w+6, y+15, format(p.values[i]))
			y += rowH
		}
		y += panelGap
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func format(v float64) string {
	if v >= 1000 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}
