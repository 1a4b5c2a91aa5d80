import { regionPlan, fillRegion, KIND } from './workload.mjs';
const plan = regionPlan({ byteLength: 256 << 20, seed: 4 });
const buf = new Uint8Array(65536);
for (const k of [0,1,2]) { const t0=performance.now(); let n=0; for (let i=0;i<plan.regionCount;i++){ if(plan.kinds[i]!==k) continue; fillRegion(plan,i,buf); n++;} console.log(k, (n*65536/1e6/((performance.now()-t0)/1000)).toFixed(0),'MB/s'); }
