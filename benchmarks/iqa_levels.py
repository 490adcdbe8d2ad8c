"""Measure BRISQUE/NIQE/PIQE/signals on scikit-image photos vs graded distortions."""
import sys, time, json; sys.path.insert(0,'.')
from tests.support import photos as p
from models.quality import create_scorer
sc={n:create_scorer(n) for n in ['brisque','niqe','piqe','signals']}
res={}
for name in ['astronaut','coffee','chelsea','rocket','motorcycle']:
  a=p.photo(name)
  for kind,levels in [('blur',p.BLUR_SIGMAS),('noise',p.NOISE_SIGMAS),('jpeg',p.JPEG_QUALITIES),('exposure',p.EXPOSURE_FACTORS)]:
    imgs=p.graded(a,kind)
    row={}
    for n,s in sc.items():
      out=s.score(imgs)
      if n=='signals':
        for f in ['sharpness','noise_sigma','blockiness','bright_fraction','dark_fraction','contrast']:
          row[f]=[round(getattr(o.details['report'],f),3) for o in out]
      else:
        row[n]=[round(o.value,1) for o in out]
    res[f'{name}/{kind}']=row
    print(name,kind,levels)
    for k,v in row.items(): print('   %-16s'%k, v)
json.dump(res,open('/tmp/iqa_measure.json','w'))
