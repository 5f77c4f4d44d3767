// A small line chart on a canvas: the last 90 samples of each series, scaled to the largest;
// a sample that is not a finite number leaves a gap.

export class RateChart {
    constructor(canvas, series, keep = 90) {
        this.canvas = canvas;
        this.series = series;
        this.keep = keep;
        this.data = series.map(() => []);
        this.draw();
    }

    push(values) {
        values.forEach((v, i) => {
            this.data[i].push(v);
            if (this.data[i].length > this.keep) this.data[i].shift();
        });
        this.draw();
    }

    draw() {
        const c = this.canvas, g = c.getContext('2d');
        const W = c.width, H = c.height, pad = 28;
        g.clearRect(0, 0, W, H);
        const max = Math.max(1, ...this.data.flat().filter(Number.isFinite));
        g.strokeStyle = '#e5e7eb';
        g.fillStyle = '#6b7280';
        g.font = '11px system-ui, sans-serif';
        for (let k = 0; k <= 4; k++) {
            const y = H - pad / 2 - (k / 4) * (H - pad);
            g.beginPath();
            g.moveTo(pad + 20, y);
            g.lineTo(W, y);
            g.stroke();
            g.fillText(((max * k) / 4).toFixed(max < 10 ? 1 : 0), 2, y + 4);
        }
        this.data.forEach((d, i) => {
            g.strokeStyle = this.series[i][1];
            g.lineWidth = 2;
            g.beginPath();
            let pen = false;
            d.forEach((v, j) => {
                if (!Number.isFinite(v)) {
                    pen = false;
                    return;
                }
                const x = pad + 20 + (j / (this.keep - 1)) * (W - pad - 20);
                const y = H - pad / 2 - (v / max) * (H - pad);
                if (pen) g.lineTo(x, y);
                else g.moveTo(x, y);
                pen = true;
            });
            g.stroke();
        });
    }
}
