"""How far richer purchase-history features take churn on the issue's protocol.

An exploration, not part of the product: the shipped churn model is trained and evaluated by
`trademl eval churn`. Run from the repository root, in a virtual environment with
pandas 3.1.1, scikit-learn 1.9.1 and lightgbm 4.7.0:

    python3 -m venv /tmp/churn-venv && /tmp/churn-venv/bin/pip install pandas==3.1.1 scikit-learn==1.9.1 lightgbm==4.7.0
    /tmp/churn-venv/bin/python docs/models/churn_ceiling.py

Label: no purchase from 1997-10-01 to 1998-06-30; features from purchases up to 1997-09-30;
stratified 5-fold cross-validation (seed 0). Printed (2026-11-26): logistic on RFM 0.770, on 33
features 0.773; LightGBM on 33 features 0.772-0.773.
"""
import pandas as pd, numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.metrics import roc_auc_score
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler
from sklearn.pipeline import make_pipeline
import lightgbm as lgb
df = pd.read_csv('data/cdnow_transactions.csv.gz', dtype={'customer_id':str})
df['date']=pd.to_datetime(df['date'].astype(str), format='%Y%m%d')
cal_end=pd.Timestamp('1997-09-30'); hold_end=pd.Timestamp('1998-06-30')
cal=df[df.date<=cal_end]; hold=df[(df.date>cal_end)&(df.date<=hold_end)]
daily=cal.groupby(['customer_id','date']).agg(amount=('amount','sum'),qty=('quantity','sum')).reset_index()
g=daily.groupby('customer_id')
f=pd.DataFrame({
 'first':g.date.min(),'last':g.date.max(),'n':g.size(),'amt':g.amount.sum(),'qty':g.qty.sum(),
 'maxamt':g.amount.max(),
})
f['recency']=(cal_end-f['last']).dt.days
f['tenure']=(cal_end-f['first']).dt.days
f['span']=(f['last']-f['first']).dt.days
f['freq']=f.n-1
f['mon']=f.amt/f.n
f['share']=f.recency/f.tenure.clip(lower=1)
f['rate']=30*f.freq/(f.tenure+1)
f['gap']=f.span/f.freq.clip(lower=1)
f['rec_over_gap']=f.recency/(f.gap+1)
for d in [30,60,90,180]:
    f[f'n{d}']=daily[daily.date>cal_end-pd.Timedelta(days=d)].groupby('customer_id').size().reindex(f.index).fillna(0)
    f[f'a{d}']=daily[daily.date>cal_end-pd.Timedelta(days=d)].groupby('customer_id').amount.sum().reindex(f.index).fillna(0)
first_amt=daily.sort_values('date').groupby('customer_id').amount.first()
f['first_amt']=first_amt
last_amt=daily.sort_values('date').groupby('customer_id').amount.last()
f['last_amt']=last_amt
f['qty_per']=f.qty/f.n
y=(~f.index.isin(hold.customer_id.unique())).astype(int)
print('churn rate',y.mean(), len(f))
base=['recency','freq','mon','tenure']
rich=base+['span','share','rate','gap','rec_over_gap','n30','n60','n90','n180','a90','a180','first_amt','last_amt','maxamt','qty','qty_per']
skf=StratifiedKFold(5,shuffle=True,random_state=0)
def cv(make,cols,transform=None):
    aucs=[]
    X=f[cols].values.astype(float)
    if transform: X=transform(X)
    for tr,te in skf.split(X,y):
        m=make(); m.fit(X[tr],y[tr]); aucs.append(roc_auc_score(y[te],m.predict_proba(X[te])[:,1]))
    return np.mean(aucs)
lg=lambda: make_pipeline(StandardScaler(),LogisticRegression(max_iter=2000))
print('logit base log1p', cv(lg,base,np.log1p))
print('logit rich log1p', cv(lg,rich,lambda X: np.log1p(np.clip(X,0,None))))
for p in [dict(n_estimators=300,learning_rate=0.03,num_leaves=8,min_child_samples=50),dict(n_estimators=600,learning_rate=0.02,num_leaves=15,min_child_samples=100,subsample=0.8,subsample_freq=1,colsample_bytree=0.8)]:
    mk=lambda: lgb.LGBMClassifier(verbose=-1,**p)
    print('lgb base',p['num_leaves'], cv(mk,base))
    print('lgb rich',p['num_leaves'], cv(mk,rich))
d=daily.sort_values(['customer_id','date']).copy()
d['prev']=d.groupby('customer_id').date.shift()
d['gapd']=(d.date-d.prev).dt.days
gg=d.groupby('customer_id')
f['gap_std']=gg.gapd.std().fillna(-1)
f['gap_min']=gg.gapd.min().fillna(-1)
f['last_gap']=gg.gapd.last().fillna(-1)
f['cohort_day']=(f['first']-pd.Timestamp('1997-01-01')).dt.days
tx=cal.groupby('customer_id').size()
f['tx_per_day']=tx/f.n
f['price_per_cd']=f.amt/f.qty.clip(lower=1)
d['since_first']=(d.date-d.groupby('customer_id').date.transform('min')).dt.days
for k in [30,90]:
    f[f'early{k}']=d[(d.since_first>0)&(d.since_first<=k)].groupby('customer_id').size().reindex(f.index).fillna(0)
# months active
d['month']=d.date.dt.to_period('M')
f['months_active']=d.groupby('customer_id').month.nunique()
more=rich+['gap_std','gap_min','last_gap','cohort_day','tx_per_day','price_per_cd','early30','early90','months_active']
mk=lambda: lgb.LGBMClassifier(verbose=-1,n_estimators=300,learning_rate=0.03,num_leaves=8,min_child_samples=50)
print('lgb more', cv(mk,more))
print('logit more', cv(lg,more,lambda X: np.log1p(np.clip(X,0,None))))
mk=lambda: lgb.LGBMClassifier(verbose=-1,n_estimators=800,learning_rate=0.01,num_leaves=6,min_child_samples=200,subsample=0.7,subsample_freq=1,colsample_bytree=0.7,reg_lambda=5)
print('lgb more slow', cv(mk,more))
