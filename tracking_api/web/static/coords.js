// Positions for base maps made in China, for display only (stored positions stay WGS-84): GCJ-02,
// the offset datum maps published in China must use (AMap/Gaode, Tencent), and BD-09, Baidu's further
// offset of GCJ-02. The forward formulas are the ones published and reimplemented far and wide
// (Krasovsky ellipsoid constants); outside China both datums are WGS-84 itself. Neither has a closed
// inverse: it is found by iteration (within 1e-9° in a few steps, the offsets being small and smooth).
"use strict";

const coords = (() => {
  const A = 6378245.0; // Krasovsky 1940 ellipsoid: semi-major axis (m)
  const EE = 0.00669342162296594323; // and first eccentricity squared
  const BD = Math.PI * 3000 / 180;

  // The bounding box both datums apply in (the formulas' own; a box, not the border).
  const inChina = (lat, lon) => lon >= 72.004 && lon <= 137.8347 && lat >= 0.8293 && lat <= 55.8271;

  function offset(x, y) { // x = lon - 105, y = lat - 35 → the offset in the formula's own unit [lat, lon]
    const waves = 20 * Math.sin(6 * x * Math.PI) + 20 * Math.sin(2 * x * Math.PI);
    const lat = -100 + 2 * x + 3 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * Math.sqrt(Math.abs(x))
      + (waves + 20 * Math.sin(y * Math.PI) + 40 * Math.sin(y / 3 * Math.PI)
         + 160 * Math.sin(y / 12 * Math.PI) + 320 * Math.sin(y * Math.PI / 30)) * 2 / 3;
    const lon = 300 + x + 2 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * Math.sqrt(Math.abs(x))
      + (waves + 20 * Math.sin(x * Math.PI) + 40 * Math.sin(x / 3 * Math.PI)
         + 150 * Math.sin(x / 12 * Math.PI) + 300 * Math.sin(x / 30 * Math.PI)) * 2 / 3;
    return [lat, lon];
  }

  function wgsToGcj(lat, lon) {
    if (!inChina(lat, lon)) return [lat, lon];
    const [dLat, dLon] = offset(lon - 105, lat - 35);
    const phi = lat / 180 * Math.PI;
    const m = 1 - EE * Math.sin(phi) ** 2;
    return [lat + dLat * 180 / ((A * (1 - EE)) / (m * Math.sqrt(m)) * Math.PI),
            lon + dLon * 180 / (A / Math.sqrt(m) * Math.cos(phi) * Math.PI)];
  }

  function gcjToBd(lat, lon) {
    if (!inChina(lat, lon)) return [lat, lon];
    const r = Math.hypot(lon, lat) + 0.00002 * Math.sin(lat * BD);
    const theta = Math.atan2(lat, lon) + 0.000003 * Math.cos(lon * BD);
    return [r * Math.sin(theta) + 0.006, r * Math.cos(theta) + 0.0065];
  }

  // The point whose image under `forward` is (lat, lon): forward moves points by a few hundred metres
  // at most and almost rigidly, so stepping back by the remaining error converges fast.
  function invert(forward, lat, lon) {
    let [y, x] = [lat, lon];
    for (let i = 0; i < 30; i++) {
      const [fy, fx] = forward(y, x);
      if (Math.abs(lat - fy) < 1e-11 && Math.abs(lon - fx) < 1e-11) break;
      y += lat - fy;
      x += lon - fx;
    }
    return [y, x];
  }

  const FORWARD = {
    wgs84: (lat, lon) => [lat, lon],
    gcj02: wgsToGcj,
    bd09: (lat, lon) => gcjToBd(...wgsToGcj(lat, lon)),
  };

  return {
    inChina,
    // WGS-84 → the tiles' coordinate system (wgs84, gcj02, bd09): [lat, lon] → [lat, lon]
    display: (crs) => FORWARD[crs] || FORWARD.wgs84,
    // and back, for a point picked on the map
    toWgs: (crs) => (lat, lon) => invert(FORWARD[crs] || FORWARD.wgs84, lat, lon),
  };
})();
